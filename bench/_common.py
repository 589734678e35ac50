"""Shared helpers for the benchmarks: a fresh database, timing, and figure formatting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from messagedb_agent.postgres import embedded as local_server
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings


def bench_database(name: str) -> str:
    """DATABASE_URL when set, else a freshly created database on the embedded server."""
    settings = Settings()
    if settings.database.database_url:
        ensure_installed(settings.database.database_url, settings)
        return settings.database.database_url
    admin = local_server.start(settings.local.home, "postgres")
    local_server.drop_database(admin, name)
    local_server.create_database(admin, name)
    url = admin.replace("/postgres?", f"/{name}?")
    ensure_installed(url, settings)
    return url


@dataclass(frozen=True)
class Figures:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def per_second(self) -> float:
        return 1000.0 / statistics.fmean(self.samples_ms)


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    func()
    return (time.perf_counter_ns() - start) / 1e6


def row(label: str, figures: Figures) -> str:
    return f"  {label:<44} p50 {figures.p50:7.3f} ms   p99 {figures.p99:7.3f} ms   {figures.per_second:9,.0f}/s"


def ratio_line(label: str, ours: Figures, base: Figures, target: float) -> str:
    ratio = ours.p50 / base.p50
    verdict = "meets" if ratio <= target else "MISSES"
    return f"  {label:<44} {ratio:5.2f}x  (target <= {target}x: {verdict})"
