"""Our step benchmark beside the peers', from one run on this machine.

Runs `../shared/peers/run_all.sh` (LangGraph + PostgresSaver and Google ADK on a fresh cluster
of the same PostgreSQL build; it is run, never copied) and `bench/step.py`, then prints our
per-step figure divided by LangGraph's durable (sync) per-step figure at the same history
length and turn shape (one user message + 5 tool round-trips = 11 steps; per step = turn ÷ 11).

Env: PEERS_DIR (default ../shared/peers beside the checkout), QUICK=1 for the peers' smoke run,
PEERBENCH_DIR (default /tmp/peerbench), and bench/step.py's own knobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("PEERS_DIR", ROOT.parent / "shared" / "peers"))
PEERBENCH = Path(os.environ.get("PEERBENCH_DIR", "/tmp/peerbench"))
TARGET_RATIO = 0.5
TARGET_GROWTH = 3.0


def run_peers() -> dict[str, object]:
    script = PEERS / "run_all.sh"
    if not script.exists():
        sys.exit(f"peer benchmarks not found at {script}; set PEERS_DIR")
    print(f"== peers: bash {script} (about 3 minutes; QUICK=1 for a smoke run)", flush=True)
    subprocess.run(
        ["bash", str(script)], check=True, env={**os.environ, "PEERBENCH_DIR": str(PEERBENCH)}
    )
    result = PEERBENCH / "results" / "latest" / "langgraph_pg.json"
    lines = result.read_text().strip().splitlines()
    return dict(json.loads(lines[-1]))


def run_ours() -> dict[str, dict[str, float]]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    print("\n== ours: bench/step.py", flush=True)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "step.py")],
        check=True,
        env={**os.environ, "BENCH_OUT": str(out)},
    )
    figures: dict[str, dict[str, float]] = json.loads(out.read_text())
    out.unlink()
    return figures


def main() -> None:
    peers = run_peers()
    ours = run_ours()
    growth = peers["growth"]
    assert isinstance(growth, dict)
    print(
        "\nper step, model time excluded (ms): ours = our turn ÷ 11, LangGraph = its pg_sync turn ÷ 11"
    )
    print(f"  {'history':>8} {'ours':>9} {'LangGraph':>10} {'ratio':>7}  target <= {TARGET_RATIO}x")
    ratios = []
    for history, figures in ours.items():
        lg = growth.get(history, {}).get("pg_sync")
        if not lg:
            print(f"  {history:>8} {figures['turn_p50_ms'] / 11:9.3f} {'(not run)':>10}")
            continue
        mine = figures["turn_p50_ms"] / 11
        theirs = float(lg["step_ms_mean_from_turn"])
        ratio = mine / theirs
        ratios.append(ratio)
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        print(f"  {history:>8} {mine:9.3f} {theirs:10.3f} {ratio:6.2f}x  {verdict}")
    lengths = sorted(ours, key=int)
    ours_growth = ours[lengths[-1]]["turn_p50_ms"] / ours[lengths[0]]["turn_p50_ms"]
    verdict = "meets" if ours_growth <= TARGET_GROWTH else "MISSES"
    print(
        f"\nour growth from H={lengths[0]} to H={lengths[-1]}: {ours_growth:.2f}x (target <= {TARGET_GROWTH}x: {verdict})"
    )
    lg_first = growth.get(lengths[0], {}).get("pg_sync")
    lg_last = growth.get(lengths[-1], {}).get("pg_sync")
    if lg_first and lg_last:
        print(
            f"LangGraph pg_sync growth over the same lengths: {float(lg_last['turn_ms']) / float(lg_first['turn_ms']):.2f}x"
        )


if __name__ == "__main__":
    main()
