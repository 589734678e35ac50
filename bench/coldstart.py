"""Cold-start benchmark: what each function's module costs to import, before any request.

For each function it runs `python -X importtime -c "import main"` in a fresh interpreter from
the function's folder (as functions-framework loads it) and sums the self times, REPEAT times,
reporting the median, as a ratio to the import of `google.genai` (the Gemini SDK, which the
step function loads only when a Gemini model is called) measured in the same run.
Also prints the heaviest imports of each function, to show where the time goes.

Env: REPEAT (5)
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("REPEAT", "5"))
# Targets as fractions of the `google.genai` import measured in the same run, so they hold on
# any machine: a function's own module may cost at most this share of what importing one
# Vertex AI SDK costs (on the machine the targets were first set on, google.genai took 0.86 s
# and the targets were 0.3, 0.4 and 0.6 s).
BASELINE = "google.genai"
TARGETS = {"ingest": 0.35, "relay": 0.45, "step": 0.7}
_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_time(code: str, cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Seconds of import (sum of self times) and the top-level imports by cumulative time."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    top: list[tuple[float, str]] = []
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        total += int(self_us)
        if len(indent) <= 1:
            top.append((int(cumulative_us) / 1e6, name))
    return total / 1e6, sorted(top, reverse=True)[:5]


def _module_time(code: str, cwd: Path, module: str) -> float:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(4) == module and len(match.group(3)) <= 1:
            return int(match.group(2)) / 1e6
    return 0.0


def _children(function: str) -> list[tuple[float, str]]:
    """The heaviest imports directly under the function's `main`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import functions_framework, main"],
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[tuple[float, str]] = []
    block: list[tuple[float, str]] = []
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match.group(3))
        if depth == 3:
            block.append((int(match.group(2)) / 1e6, match.group(4)))
        elif depth <= 1:  # a top-level line closes the block of children printed before it
            if match.group(4) == "main":
                found = block
            block = []
    return sorted(found, reverse=True)


def measure(code: str, cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    runs = [import_time(code, cwd) for _ in range(REPEAT)]
    median = statistics.median(r[0] for r in runs)
    return median, runs[0][1]


def main() -> None:
    print(
        f"cold start: import time before the first request (median of {REPEAT} fresh interpreters)"
    )
    figures: dict[str, float] = {}
    baseline, _ = measure(f"import {BASELINE}", ROOT)
    figures[BASELINE] = baseline
    framework, _ = measure("import functions_framework", ROOT)
    figures["functions_framework"] = framework
    print(
        f"  the runtime, functions_framework (loaded by the server before any function): {framework:.3f} s"
    )
    for name, target in TARGETS.items():
        # the runtime goes first, as the Cloud Functions server loads it before the function;
        # `main`'s cumulative time is then what the function's own module costs
        own = statistics.median(
            _module_time("import functions_framework, main", ROOT / "functions" / name, "main")
            for _ in range(REPEAT)
        )
        figures[name] = own
        ratio = own / baseline
        verdict = "meets" if ratio <= target else "MISSES"
        heaviest = ", ".join(f"{n} {s * 1000:.0f} ms" for s, n in _children(name)[:3])
        print(
            f"  {name:<8} {own:6.3f} s = {ratio:.2f}x {BASELINE} (target <= {target}x: {verdict})"
            f"   heaviest: {heaviest}"
        )
    print(
        f"the baseline, in the same run: {BASELINE} {baseline:.3f} s "
        "(loaded by step only when a Gemini model is called)"
    )
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
