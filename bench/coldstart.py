"""Cold-start benchmark: what each function's module costs to import, before any request.

For each function it runs `python -X importtime -c "import main"` in a fresh interpreter from
the function's folder (as functions-framework loads it) and sums the self times, REPEAT times,
reporting the median; beside them, the same figure for `google.cloud.aiplatform` and
`google.genai`, the Vertex AI SDKs the step function loads only when a Vertex model is used.
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
TARGETS = {"ingest": 0.3, "relay": 0.4, "step": 0.6}
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


def measure(code: str, cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    runs = [import_time(code, cwd) for _ in range(REPEAT)]
    median = statistics.median(r[0] for r in runs)
    return median, runs[0][1]


def main() -> None:
    print(
        f"cold start: import time before the first request (median of {REPEAT} fresh interpreters)"
    )
    figures: dict[str, float] = {}
    for name, target in TARGETS.items():
        seconds, top = measure("import main", ROOT / "functions" / name)
        figures[name] = seconds
        verdict = "meets" if seconds <= target else "MISSES"
        heaviest = ", ".join(f"{n} {s * 1000:.0f} ms" for s, n in top[:3])
        print(
            f"  {name:<8} {seconds:6.3f} s   (target <= {target} s: {verdict})   heaviest: {heaviest}"
        )
    print("for scale, in the same run:")
    for module in ("google.cloud.aiplatform", "google.genai"):
        seconds, _ = measure(f"import {module}", ROOT)
        figures[module] = seconds
        print(
            f"  {module:<24} {seconds:6.3f} s   (loaded by step only when a Vertex model is used)"
        )
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
