"""The supervisor's decisions on a test clock: when it restarts a part and what it says."""

from __future__ import annotations

from dataclasses import dataclass, field

from messagedb_agent.stack.supervisor import Supervisor, Watched


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Part:
    """A child that can be killed and comes back answering after `boot` ticks."""

    up: bool = True
    boot: int = 0
    starts: list[float] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)

    def restart(self) -> None:
        self.starts.append(self.clock.now)
        self.up = True

    def watched(self) -> Watched:
        return Watched(
            "the step function",
            alive=lambda: self.up,
            restart=self.restart,
            why=lambda: "pid 7 killed by SIGKILL",
        )


def _supervisor(clock: Clock, said: list[str]) -> Supervisor:
    return Supervisor(said.append, first_delay=0.5, max_delay=4.0, stable_after=30.0, clock=clock)


def test_a_killed_part_is_said_to_have_stopped_restarted_after_the_delay_and_said_to_be_back() -> (
    None
):
    clock, said = Clock(), []
    part = Part(clock=clock)
    supervisor = _supervisor(clock, said)
    supervisor.watch(part.watched())
    clock.now = 100.0

    part.up = False
    supervisor.tick()
    clock.now += 0.25
    supervisor.tick()  # still within the delay
    assert part.starts == []
    clock.now += 0.25
    supervisor.tick()  # restarted
    supervisor.tick()  # answers

    assert part.starts == [100.5]
    assert said == [
        "!! the step function stopped unexpectedly (pid 7 killed by SIGKILL); "
        "restarting it in 0.5s",
        "the step function is back (restart 1, 0.5s after it stopped)",
    ]
    assert supervisor.restarts("the step function") == 1


def test_a_part_that_keeps_dying_soon_after_each_start_waits_longer_each_time_up_to_a_cap() -> None:
    clock, said = Clock(), []
    part = Part(clock=clock)
    supervisor = _supervisor(clock, said)
    supervisor.watch(part.watched())

    for _ in range(6):
        part.up = False
        supervisor.tick()
        clock.now += 10.0  # past any delay
        supervisor.tick()

    delays = [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in said if "stopped" in line]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(part.starts) == 6


def test_a_part_that_stayed_up_a_while_is_restarted_after_the_first_delay_again() -> None:
    clock, said = Clock(), []
    part = Part(clock=clock)
    supervisor = _supervisor(clock, said)
    supervisor.watch(part.watched())
    for _ in range(3):  # three quick deaths: the delay has grown
        part.up = False
        supervisor.tick()
        clock.now += 10.0
        supervisor.tick()
        supervisor.tick()

    clock.now += 60.0  # then a minute of good health
    part.up = False
    supervisor.tick()

    assert said[-1].endswith("restarting it in 0.5s")


def test_a_restart_that_fails_is_tried_again_later() -> None:
    clock, said = Clock(), []
    attempts: list[float] = []

    def refuse() -> None:
        attempts.append(clock.now)
        raise OSError("address in use")

    supervisor = _supervisor(clock, said)
    supervisor.watch(Watched("PostgreSQL", alive=lambda: False, restart=refuse))
    supervisor.tick()
    clock.now += 0.5
    supervisor.tick()
    clock.now += 0.5
    supervisor.tick()  # not yet: the next try waits longer
    clock.now += 1.0
    supervisor.tick()

    assert attempts == [0.5, 2.0]
    assert "!! PostgreSQL could not be started again (address in use); next try in 1s" in said
