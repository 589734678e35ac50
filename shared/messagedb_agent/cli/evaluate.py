"""`messagedb-agent eval`: how often the agent picks the right tools, measured on a versioned
set of requests run through the real engine against the configured model.

Only typer and the shared CLI helpers are imported at module level; everything else when the
command runs, so `--help` and the other commands stay quick.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from messagedb_agent.cli.common import friendly, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from messagedb_agent.engine.step import Engine
    from messagedb_agent.evaluation.cases import EvalSet
    from messagedb_agent.evaluation.runner import EvalRun
    from messagedb_agent.settings import Settings
    from messagedb_agent.store.client import MessageStore

_SHOWN_PROBLEMS = 10


@friendly
def evaluate(
    cases: Annotated[
        Path | None,
        typer.Option(
            "--cases",
            metavar="FILE",
            help="An eval set (JSON Lines: a header naming it and its version, then one case a "
            "line); default: the packaged tool_choice set.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="TOOL",
            help="Run only the cases that expect TOOL (repeatable); `none`: the cases that "
            "expect no tool.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Run only the first N cases chosen.")
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="PATH",
            help="Write everything (every case, its calls, the scores) as JSON to PATH; `-` "
            "writes it to stdout and the report to stderr.",
        ),
    ] = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option(
            "--min-accuracy",
            min=0.0,
            max=1.0,
            help="Exit with status 1 when fewer than this share of cases pass (0..1).",
        ),
    ] = None,
    vertex: Annotated[
        bool,
        typer.Option(
            "--vertex",
            help="Also score the run with Vertex AI's Gen AI evaluation service (needs "
            "GOOGLE_CLOUD_PROJECT, credentials and the eval extra).",
        ),
    ] = False,
) -> None:
    """Run the tool-choice eval set through the agent and report its accuracy.

    Each case runs in a fresh thread of its own user, against the configured model (the
    offline one unless a Vertex AI project is set). The exit status is 0 whatever the
    accuracy, unless --min-accuracy is given and missed.
    """
    from messagedb_agent.evaluation.cases import NO_TOOL, load_eval_set
    from messagedb_agent.evaluation.report import progress_line, report_lines, summarise, to_json
    from messagedb_agent.evaluation.runner import EvalRun, new_run_id, run_cases

    eval_set = load_eval_set(cases)
    wanted = only or []
    known = [*eval_set.tools(), NO_TOOL]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(
            f"--only {unknown[0]}: no case expects it (choose from {', '.join(known)})"
        )
    chosen = eval_set.select(wanted, limit)
    if not chosen:
        raise ValueError("no case matches --only/--limit")
    settings = load_settings()
    if vertex and not settings.google_cloud_project:
        raise ValueError("--vertex needs GOOGLE_CLOUD_PROJECT (and credentials) to be set")
    out: TextIO = sys.stderr if json_path == "-" else sys.stdout

    def say(line: str) -> None:
        typer.echo(line, file=out)

    run_id = new_run_id()
    with _open_store(settings) as store:
        engine = _engine(settings, store, eval_set)
        say(
            f"eval set {eval_set.label}: {len(chosen)} of {len(eval_set.cases)} cases · "
            f"model {settings.effective_model} · run {run_id}"
        )
        started = datetime.now(UTC)
        results = run_cases(
            engine,
            chosen,
            run_id=run_id,
            on_result=lambda index, result: say(progress_line(index, len(chosen), result)),
            max_message_length=settings.threads.max_message_length,
        )
    run = EvalRun(
        eval_set,
        settings.effective_model,
        run_id,
        started,
        datetime.now(UTC),
        tuple(results),
        selection={"only": wanted, "limit": limit, "cases": len(chosen)},
    )
    submission_failed: str | None = None
    if vertex:
        try:
            run = _score_with_vertex(run, settings, say)
        except RuntimeError as exc:
            submission_failed = str(exc)
    for line in report_lines(run):
        say(line)
    if json_path is not None:
        _write_json(to_json(run), json_path)
    if submission_failed:
        typer.secho(f"error: {submission_failed}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    accuracy = summarise(run).overall.accuracy
    if min_accuracy is not None and accuracy < min_accuracy:
        typer.secho(
            f"accuracy {accuracy:.1%} is below --min-accuracy {min_accuracy:.1%}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)


def _open_store(settings: Settings) -> MessageStore:
    from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store

    url = database_url(settings)
    ensure_installed(url, settings)
    return open_store(settings, url)


def _engine(settings: Settings, store: MessageStore, eval_set: EvalSet) -> Engine:
    from messagedb_agent.evaluation.cases import check_tools
    from messagedb_agent.runtime import build_engine

    engine = build_engine(settings, store)
    problems = check_tools(eval_set, engine.tools.specs())
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = (
            f" (and {len(problems) - _SHOWN_PROBLEMS} more)"
            if len(problems) > _SHOWN_PROBLEMS
            else ""
        )
        raise ValueError(f"the eval set does not fit the agent's tools: {shown}{more}")
    return engine


def _score_with_vertex(run: EvalRun, settings: Settings, say: Callable[[str], None]) -> EvalRun:
    from messagedb_agent.evaluation.metrics import mean_scores
    from messagedb_agent.evaluation.runner import ServiceRun
    from messagedb_agent.evaluation.vertex import evaluate_instances, service_endpoint

    assert settings.google_cloud_project is not None
    location = settings.model.google_cloud_location
    endpoint = service_endpoint(location, settings.model.vertex_api_endpoint)
    say(f"scoring {len(run.results)} cases with the Gen AI evaluation service at {endpoint}")
    scores = evaluate_instances(
        [(result.prediction, result.reference) for result in run.results],
        project=settings.google_cloud_project,
        location=location,
        endpoint=endpoint,
    )
    results = tuple(
        replace(result, service_scores=score)
        for result, score in zip(run.results, scores, strict=True)
    )
    return replace(run, results=results, service=ServiceRun(endpoint, mean_scores(scores)))


def _write_json(document: dict[str, object], path: str) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if path == "-":
        typer.echo(text)
        return
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"--json {path}: {exc.strerror or exc}") from None
