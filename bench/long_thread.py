"""Long-thread benchmark: one thread grown to 50, 200 and 1,000 turns on the offline model.

Without compaction every model call carries the whole thread, so input tokens per call (and
cost) grow with its length and a long thread ends up over the model's context window. Here the
engine runs as deployed (the offline model, the real task tools, the real Message DB, a warm
instance's view cache) with a context budget, and the figures show the context staying flat.

Per length it prints, over the turns just before it: input tokens per reply call (estimated as
the engine estimates them), what the whole history would have cost per call without
compaction (the baseline, measured on the same thread), the compactions so far (calls and
tokens), and the engine's per-step time with the model's time taken out.

Targets: input tokens per call at 1,000 turns within 1.2x of 200 turns, and per-step time at
1,000 turns within 1.5x of 50 turns.

Env: TURNS (50,200,1000), WINDOW (turns measured before each length, 40), BUDGET (context
budget in tokens; unset: the embedded default's, half the offline model's window).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import Figures, bench_database, row
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import ContextCompacted, Event, Recorded
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.llm.prompts import COMPACTION_PROMPT
from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolSpec
from messagedb_agent.projections.llm_context import LLMContextFold, estimate_tokens
from messagedb_agent.render import event_line
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message, start_thread
from messagedb_agent.threads.reading import read_thread

TURNS = [int(n) for n in os.environ.get("TURNS", "50,200,1000").split(",")]
WINDOW = int(os.environ.get("WINDOW", "40"))
BUDGET = int(os.environ["BUDGET"]) if os.environ.get("BUDGET") else None

# What a user of a task assistant says, over and over: adds, lists, completions, sums, talk.
SCRIPT = (
    "add a task to call the plumber about the kitchen sink",
    "what's on my list?",
    "complete task {n}",
    "what is {n} * 17",
    "thanks, that's helpful. what time is it?",
    "add a task to book the dentist for next week",
    "delete task {n}",
)


@dataclass
class Measured:
    """The offline model, timing itself and recording each call's size and purpose."""

    model: OfflineModel = field(default_factory=OfflineModel)
    seconds: float = 0.0
    reply_tokens: list[int] = field(default_factory=list)
    compaction_calls: int = 0
    compaction_tokens: int = 0

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        start = time.perf_counter()
        size = sum(estimate_tokens(m) for m in messages)
        response = self.model.call(messages, tools, config)
        if config.system_prompt == COMPACTION_PROMPT:
            self.compaction_calls += 1
            self.compaction_tokens += size + estimate_tokens_text(response.text)
        else:
            self.reply_tokens.append(size)
        self.seconds += time.perf_counter() - start
        return response


def estimate_tokens_text(text: str) -> int:
    return -(-len(text) // 4)


def run_turn(
    engine: Engine, model: Measured, store: MessageStore, thread: str, n: int
) -> list[float]:
    """One user message run to its reply; the engine's time per step, the model's excluded."""
    message = SCRIPT[n % len(SCRIPT)].format(n=max(1, n // len(SCRIPT)))
    appended = add_message(store, thread, owner="bench", message=message, now=datetime.now(UTC))
    current = appended.notification
    per_step: list[float] = []
    while True:
        before = model.seconds
        start = time.perf_counter()
        result = engine.advance(current, max_steps=1)
        elapsed = time.perf_counter() - start - (model.seconds - before)
        if result.steps:
            per_step.append(elapsed * 1000 / result.steps)
        if not result.follow_ups:
            return per_step
        current = result.follow_ups[-1]


def uncompacted_tokens(events: list[Recorded[Event]]) -> int:
    """The context the next call would carry had nothing been compacted: the baseline."""
    kept = [e for e in events if not isinstance(e.event, ContextCompacted)]
    return LLMContextFold().feed(kept).tokens


def main() -> None:
    url = bench_database("bench_long_thread")
    settings = Settings(database_url=url, model_name="offline", context_budget_tokens=BUDGET)
    results: dict[int, dict[str, float]] = {}
    with MessageStore(url, min_size=1, max_size=2) as store:
        model = Measured()
        engine = build_engine(settings, store, llm=model)
        print(
            f"long-thread benchmark: offline model, context budget "
            f"{engine.config.context_budget} tokens, {WINDOW} turns measured before each length"
        )
        thread = start_thread(store, owner="bench", message=None, now=datetime.now(UTC))
        steps: list[float] = []
        calls_before = 0
        started = time.perf_counter()
        for n in range(max(TURNS)):
            if n + WINDOW in TURNS or (n == 0 and min(TURNS) <= WINDOW):
                steps, calls_before = [], len(model.reply_tokens)
            steps += run_turn(engine, model, store, thread.thread_id, n)
            turns = n + 1
            if turns in TURNS:
                events = read_thread(store, thread.stream_name)
                tokens = model.reply_tokens[calls_before:]
                figures = Figures(steps)
                results[turns] = {
                    "tokens": statistics.fmean(tokens),
                    "baseline": uncompacted_tokens(events),
                    "step_p50": figures.p50,
                }
                print(
                    f"\n{turns} turns ({len(events)} events, {time.perf_counter() - started:.0f} s so far)"
                )
                print(
                    f"  input tokens per reply call, mean of the last {len(tokens):<3} {statistics.fmean(tokens):9,.0f}  (max {max(tokens):,})"
                )
                print(
                    f"  baseline: the whole history per call            {results[turns]['baseline']:9,}"
                )
                print(
                    f"  compactions so far: {model.compaction_calls} calls, {model.compaction_tokens:,} tokens"
                )
                print(row("engine step, warm instance (model excluded)", figures))
        compactions = [e for e in events if isinstance(e.event, ContextCompacted)]
        print(
            f"\nthe thread's last compactions, as `messagedb-agent show {thread.thread_id} --events`:"
        )
        for recorded in compactions[-3:]:
            print(event_line(recorded))
    low, mid, high = (results[t] for t in (TURNS[0], TURNS[1], TURNS[-1]))
    flat = high["tokens"] / mid["tokens"]
    slow = high["step_p50"] / low["step_p50"]
    saved = high["baseline"] / high["tokens"]
    print()
    print(
        f"  input tokens per call, {TURNS[-1]} vs {TURNS[1]} turns: {flat:5.2f}x  (target <= 1.2x: {'meets' if flat <= 1.2 else 'MISSES'})"
    )
    print(
        f"  per-step p50, {TURNS[-1]} vs {TURNS[0]} turns:         {slow:5.2f}x  (target <= 1.5x: {'meets' if slow <= 1.5 else 'MISSES'})"
    )
    print(f"  the whole history per call would be {saved:,.1f}x larger at {TURNS[-1]} turns")


if __name__ == "__main__":
    main()
