"""The packaged eval set, and what the loader refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from messagedb_agent.evaluation.cases import (
    NO_TOOL,
    check_tools,
    default_set_path,
    load_eval_set,
)
from messagedb_agent.tools import default_registry

HEADER = {"eval_set": "tiny", "version": 2}


def write_set(path: Path, *lines: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_packaged_set_is_named_versioned_and_large_enough() -> None:
    eval_set = load_eval_set()
    assert eval_set.name == "tool_choice"
    assert eval_set.version == 1
    assert default_set_path().name == f"{eval_set.name}_v{eval_set.version}.jsonl"
    assert len(eval_set.cases) >= 60


def test_every_tool_the_agent_has_is_required_by_some_case() -> None:
    eval_set = load_eval_set()
    required = {call.tool for case in eval_set.cases for call in case.required}
    assert set(default_registry().names()) <= required


def test_the_set_has_single_chained_and_no_tool_cases_in_fair_numbers() -> None:
    cases = load_eval_set().cases
    by_category = {
        category: [c for c in cases if c.category == category]
        for category in ("single", "chained", "no_tool")
    }
    assert len(by_category["chained"]) >= 10
    assert len(by_category["no_tool"]) >= 10
    assert all(len(case.required) >= 2 for case in by_category["chained"])
    assert all(not case.expected for case in by_category["no_tool"])


def test_case_ids_are_unique_and_requests_are_not_repeated() -> None:
    cases = load_eval_set().cases
    assert len({case.id for case in cases}) == len(cases)
    assert len({case.request.casefold() for case in cases}) == len(cases)


def test_the_set_fits_the_agents_real_tools_and_arguments() -> None:
    assert check_tools(load_eval_set(), default_registry().specs()) == []


def test_an_unknown_tool_or_argument_is_reported(tmp_path: Path) -> None:
    path = write_set(
        tmp_path / "set.jsonl",
        HEADER,
        {"id": "a", "request": "x", "category": "single", "expected": [{"tool": "add_tasks"}]},
        {
            "id": "b",
            "request": "y",
            "category": "single",
            "expected": [{"tool": "add_task", "arguments": {"name": "milk"}}],
        },
    )
    problems = check_tools(load_eval_set(path), default_registry().specs())
    assert problems == [
        "a expects add_tasks, which is not a tool",
        "b expects add_task(name=...), which has no argument 'name'",
    ]


def test_a_duplicated_id_is_refused(tmp_path: Path) -> None:
    case = {"id": "same", "request": "hi", "category": "no_tool"}
    path = write_set(tmp_path / "set.jsonl", HEADER, case, {**case, "request": "hello"})
    with pytest.raises(ValueError, match="'same' is used twice"):
        load_eval_set(path)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ({"id": "a", "request": "hi", "category": "single"}, "does not fit 0 required"),
        (
            {
                "id": "a",
                "request": "x",
                "category": "chained",
                "expected": [{"tool": "list_tasks", "optional": True}, {"tool": "add_task"}],
            },
            "does not fit 1 required",
        ),
        ({"id": "A b", "request": "hi", "category": "no_tool"}, "id"),
        ({"id": "a", "request": "hi", "category": "no_tool", "extra": 1}, "extra"),
        (
            {
                "id": "a",
                "request": "hi",
                "category": "no_tool",
                "setup": [{"message": "x", "tool": "echo"}],
            },
            "either a message or a tool call",
        ),
    ],
)
def test_a_malformed_case_names_its_line(
    tmp_path: Path, case: dict[str, object], reason: str
) -> None:
    path = write_set(tmp_path / "set.jsonl", HEADER, case)
    with pytest.raises(ValueError, match=rf"set\.jsonl:2: .*{reason}"):
        load_eval_set(path)


def test_a_file_without_its_header_is_refused(tmp_path: Path) -> None:
    path = write_set(tmp_path / "set.jsonl", {"id": "a", "request": "hi", "category": "no_tool"})
    with pytest.raises(ValueError, match=r"set\.jsonl:1: "):
        load_eval_set(path)


def test_selecting_by_tool_includes_optional_uses_and_none_selects_no_tool_cases() -> None:
    eval_set = load_eval_set()
    deletes = eval_set.select(["delete_task"])
    assert deletes
    assert all("delete_task" in case.tools for case in deletes)
    quiet = eval_set.select([NO_TOOL])
    assert quiet
    assert all(not case.expected for case in quiet)
    assert [case.id for case in eval_set.select(limit=3)] == [c.id for c in eval_set.cases[:3]]
    assert len(eval_set.select(["echo", NO_TOOL])) == len(eval_set.select(["echo"])) + len(quiet)
