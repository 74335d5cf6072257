"""The scenarios: how many answers stream at once, at what pace, how many tokens each, in
how many alternating passes; `steady(n)` is N users at 30 tokens/s (the capacity steps)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int  # concurrent answers
    rate: float  # tokens per second per answer
    count: int  # tokens per answer
    rounds: int  # answers per virtual user, back to back
    ramp: bool  # spread first starts over one answer's duration (steady N); else all at once
    direct: int  # streams read straight from the upstream at the same moment
    capacity: bool = True  # counts for the capacity figure
    ramp_seconds: float | None = None  # instead of one answer's duration
    memory_only: bool = False  # measures memory; not in the CPU targets
    # Alternating passes (project, baseline, project, ...), each on fresh servers, pooled
    # for the CPU ratio: a light run's ratio moves with the machine's state (see below).
    passes: int = 1

    @property
    def answer_seconds(self) -> float:
        return self.count / self.rate

    @property
    def stagger(self) -> float:
        if not self.ramp:
            return 0.0
        return self.ramp_seconds if self.ramp_seconds is not None else self.answer_seconds


def steady(n: int, rounds: int = 2) -> Scenario:
    return Scenario(
        f"n{n}", n, 30.0, 60, rounds, ramp=n > 1, direct=1 if n == 1 else min(50, max(2, n // 10))
    )


# More answers back to back where a run is short or light: a 20 s N=1 run moved by ±15%
# between runs on the same code, and the first of two rounds at N=100 is mostly opening
# connections (both relays keep them alive afterwards, as in production). Light runs also
# alternate in passes: one 60 s pass per relay put the same code's N=1 ratio anywhere
# from 0.34x to 0.41x, as the machine's state drifted between the two relays' turns.
SCENARIOS = {
    "n1": replace(steady(1, rounds=15), passes=3),
    "n100": replace(steady(100, rounds=4), passes=3),
    "n500": steady(500),
    "n1000": steady(1000),
    "burst": Scenario("burst", 200, 200.0, 60, 1, ramp=False, direct=20, capacity=False),
    # 1000 answers really open at once (slow tokens, so one core is not the limit): memory
    # per open stream without the requests an overloaded n1000 leaves waiting.
    "open1000": Scenario(
        "open1000",
        1000,
        2.0,
        60,
        1,
        ramp=True,
        direct=20,
        capacity=False,
        ramp_seconds=10.0,
        memory_only=True,
    ),
}
DEFAULT_SCENARIOS = ["n1", "n100", "n500", "n1000", "burst", "open1000"]
QUICK_SCENARIOS = ["n1", "n100"]
CAPACITY_STEPS = [25, 50, 75, 100, 150, 200, 300, 400, 500, 700, 1000]
CAPACITY_RESOLUTION = 25  # the finest step of the search between two of them


def scenario_parsed(name: str) -> Scenario | None:
    """Any other `nK` (K users at 30 tokens/s) or `nKxT` (T tokens per answer); else None."""
    n, _, count = name[1:].partition("x")
    if name[:1] == "n" and n.isdigit() and count.isdigit():
        return replace(steady(int(n)), name=name, count=int(count))
    if name[:1] == "n" and name[1:].isdigit():
        return steady(int(name[1:]))
    return None
