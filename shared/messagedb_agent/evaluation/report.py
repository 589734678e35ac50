"""What a run says: accuracy overall, per tool and per kind of request, the failures with
expected against actual, and the Vertex-style scores; as terminal lines and as one JSON
document holding everything, so two runs (two models, two editions of the set) compare."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from messagedb_agent.evaluation.cases import NO_TOOL
from messagedb_agent.evaluation.metrics import (
    VERTEX_METRICS,
    describe_actual,
    describe_expected,
    mean_scores,
)
from messagedb_agent.evaluation.runner import CaseResult, EvalRun

_REPLY_SHOWN = 160


@dataclass(frozen=True, slots=True)
class Tally:
    cases: int = 0
    passed: int = 0
    tools_right: int = 0

    def add(self, result: CaseResult) -> Tally:
        return Tally(
            self.cases + 1,
            self.passed + int(result.passed),
            self.tools_right + int(result.tools_right),
        )

    @property
    def accuracy(self) -> float:
        """Cases passed: the right tools in order, with the arguments that matter."""
        return self.passed / self.cases if self.cases else 0.0

    @property
    def tool_accuracy(self) -> float:
        """Cases whose tool names alone were right, whatever the arguments."""
        return self.tools_right / self.cases if self.cases else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "passed": self.passed,
            "failed": self.cases - self.passed,
            "accuracy": round(self.accuracy, 4),
            "tool_choice_accuracy": round(self.tool_accuracy, 4),
        }


@dataclass(frozen=True, slots=True)
class Summary:
    overall: Tally
    by_tool: dict[str, Tally]
    by_category: dict[str, Tally]
    local_scores: dict[str, float]
    service_scores: dict[str, float] | None


def summarise(run: EvalRun) -> Summary:
    overall = Tally()
    by_tool: dict[str, Tally] = {}
    by_category: dict[str, Tally] = {}
    for result in run.results:
        overall = overall.add(result)
        for tool in _counted_tools(result):
            by_tool[tool] = by_tool.get(tool, Tally()).add(result)
        category = result.case.category
        by_category[category] = by_category.get(category, Tally()).add(result)
    return Summary(
        overall,
        dict(sorted(by_tool.items())),
        by_category,
        mean_scores(result.scores for result in run.results),
        run.service.means if run.service is not None else None,
    )


def _counted_tools(result: CaseResult) -> list[str]:
    """The tools a case is counted under: those it requires (an optional look-up is not what
    the case is about), or `none` when it expects no call."""
    required = list(dict.fromkeys(call.tool for call in result.case.required))
    return required or [NO_TOOL]


# -- the terminal ----------------------------------------------------------------------------


def progress_line(index: int, total: int, result: CaseResult) -> str:
    width = len(str(total))
    mark = "PASS" if result.passed else "FAIL"
    line = f"[{index + 1:>{width}}/{total}] {mark}  {result.case.id:<30} {describe_actual(result.actual)}"
    return line if result.passed else f"{line}\n{'':>{2 * width + 10}}↳ {_first_problem(result)}"


def report_lines(run: EvalRun) -> list[str]:
    summary = summarise(run)
    failed = [result for result in run.results if not result.passed]
    lines = [
        "",
        f"eval set {run.eval_set.label} · model {run.model} · run {run.run_id}",
    ]
    if failed:
        lines += ["", f"failures ({len(failed)}):"]
        for result in failed:
            lines += _failure(result)
    lines += ["", "by tool:", *_table(summary.by_tool.items())]
    lines += ["", "by kind of request:", *_table(summary.by_category.items())]
    lines += ["", "Vertex-style tool-use metrics (mean over cases):"]
    lines += _scores(summary.local_scores, summary.service_scores)
    overall = summary.overall
    lines += [
        "",
        f"accuracy {overall.accuracy:.1%} ({overall.passed}/{overall.cases} cases passed) · "
        f"tool choice {overall.tool_accuracy:.1%} ({overall.tools_right}/{overall.cases} "
        "with the right tools, whatever the arguments)",
    ]
    return lines


def _failure(result: CaseResult) -> list[str]:
    case = result.case
    lines = [
        f"  ✗ {case.id} ({case.category}): {case.request!r}",
        f"      expected: {describe_expected(case.expected)}",
        f"      actual:   {describe_actual(result.actual)}",
    ]
    lines += [f"      why:      {problem}" for problem in result.verdict.problems]
    failures = [call for call in result.actual if call.ok is False]
    lines += [f"      tool said: {call.name}: {call.error}" for call in failures]
    if result.error and result.error not in result.verdict.problems:
        lines.append(f"      error:    {result.error}")
    if result.reply:
        lines.append(f"      reply:    {_shorten(result.reply)}")
    return lines


def _table(rows: Iterable[tuple[str, Tally]]) -> list[str]:
    return [
        f"  {name:<18} {tally.accuracy:>7.1%}  {tally.passed:>3}/{tally.cases:<3}"
        f"  tool choice {tally.tool_accuracy:>6.1%}"
        for name, tally in rows
    ]


def _scores(local: dict[str, float], service: dict[str, float] | None) -> list[str]:
    lines = []
    for metric in VERTEX_METRICS:
        line = f"  {metric:<26} local {local.get(metric, 0.0):.3f}"
        if service is not None and metric in service:
            line += f"   service {service[metric]:.3f}"
        lines.append(line)
    return lines


def _first_problem(result: CaseResult) -> str:
    problems = result.verdict.problems
    return problems[0] if problems else (result.error or "failed")


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _REPLY_SHOWN else flat[: _REPLY_SHOWN - 1] + "…"


# -- JSON ------------------------------------------------------------------------------------


def to_json(run: EvalRun) -> dict[str, Any]:
    summary = summarise(run)
    return {
        "eval_set": {
            "name": run.eval_set.name,
            "version": run.eval_set.version,
            "source": run.eval_set.source,
            "cases_in_set": len(run.eval_set.cases),
        },
        "run": {
            "id": run.run_id,
            "model": run.model,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat(),
            "selection": run.selection,
        },
        "totals": summary.overall.to_json(),
        "by_tool": {name: tally.to_json() for name, tally in summary.by_tool.items()},
        "by_category": {name: tally.to_json() for name, tally in summary.by_category.items()},
        "vertex_metrics": {
            "local": _rounded(summary.local_scores),
            "service": _rounded(summary.service_scores) if summary.service_scores else None,
            "service_endpoint": run.service.endpoint if run.service else None,
        },
        "cases": [_case_json(result) for result in run.results],
    }


def _case_json(result: CaseResult) -> dict[str, Any]:
    case = result.case
    return {
        "id": case.id,
        "category": case.category,
        "request": case.request,
        "setup": [step.model_dump(exclude_none=True) for step in case.setup],
        "expected": [call.model_dump() for call in case.expected],
        "actual": [
            {"name": c.name, "arguments": dict(c.arguments), "ok": c.ok, "error": c.error}
            for c in result.actual
        ],
        "passed": result.passed,
        "tool_choice_right": result.tools_right,
        "problems": list(result.verdict.problems),
        "error": result.error,
        "reply": result.reply,
        "thread_id": result.thread_id,
        "seconds": round(result.seconds, 3),
        "prediction": result.prediction,
        "reference": result.reference,
        "scores": _rounded(result.scores),
        "service_scores": _rounded(result.service_scores) if result.service_scores else None,
    }


def _rounded(scores: dict[str, float] | None) -> dict[str, float]:
    return {metric: round(value, 4) for metric, value in (scores or {}).items()}
