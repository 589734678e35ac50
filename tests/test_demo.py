"""The main job, both ways: in-process and through the local serverless stack."""

from __future__ import annotations

import uuid

from messagedb_agent.demo import DEMO_TURNS, run_demo, run_http_demo
from messagedb_agent.settings import Settings


def settings_for(database_url: str, settings: Settings) -> Settings:
    return Settings(
        database_url=database_url,
        messagedb_agent_home=settings.local.home,
        model_name="offline",
        local_user=f"demo-{uuid.uuid4().hex[:8]}",
    )


def test_the_in_process_demo_runs_every_turn_and_a_second_run_sees_the_saved_tasks(
    database_url: str, settings: Settings
) -> None:
    demo_settings = settings_for(database_url, settings)
    first: list[str] = []
    run_demo(demo_settings, echo=first.append)
    text = "\n".join(first)
    assert text.count("you       ›") == len(DEMO_TURNS)
    assert 'add_task(title="buy milk")' in text
    assert "12*(3+4) = 84" in text
    assert "event stream thread_" in text
    second: list[str] = []
    run_demo(demo_settings, echo=second.append, turns=DEMO_TURNS[:1])
    assert "walk the dog" in "\n".join(second)  # saved by the first run


def test_the_http_demo_goes_through_ingest_pubsub_and_step(
    database_url: str, settings: Settings
) -> None:
    lines: list[str] = []
    run_http_demo(settings_for(database_url, settings), echo=lines.append)
    text = "\n".join(lines)
    assert "Pub/Sub emulator" in text
    assert text.count("assistant ›") == len(DEMO_TURNS)
    assert "complete_task(task_id=" in text
    assert "ToolExecutionCompleted" in text
    assert "/ui/#token=" in text  # where to open the web chat


def test_the_readmes_sample_transcript_says_what_the_demo_says() -> None:
    """The README shows the demo's turns in the demo's order, and no turn the demo lacks."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    sample = readme.split("## Two commands", 1)[1].split("Run it again", 1)[0]
    said = [
        line.split("›", 1)[1].strip() for line in sample.splitlines() if line.startswith("you ")
    ]
    assert said
    assert said == list(DEMO_TURNS[: len(said)])
