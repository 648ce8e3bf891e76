"""Statistics over a window of a run, from two snapshots of locust's cumulative counters.

Locust keeps, per request name and in total, a histogram of response times (``{rounded_ms: count}``) and
running counts. Differencing two snapshots gives exact statistics for any interval (one second of the
timeline, one step of a step-load run) without resetting the run's overall statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PERCENTILES = (0.50, 0.95, 0.99)


@dataclass(frozen=True)
class Snapshot:
    at_s: float  # seconds since the run started
    users: int
    requests: int
    failures: int
    response_times: dict[int, int] = field(default_factory=dict)  # rounded ms -> count


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    users: int  # at the end of the window
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok_rps(self) -> float:
        """Successful requests per second: the throughput a client actually got."""
        return (self.requests - self.failures) / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def percentile(histogram: dict[int, int], fraction: float) -> float:
    """The smallest response time that at least ``fraction`` of the requests finished within (0 if none)."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    needed = fraction * total
    seen = 0
    for millis in sorted(histogram):
        seen += histogram[millis]
        if seen >= needed:
            return float(millis)
    return float(max(histogram))


def histogram_delta(later: dict[int, int], earlier: dict[int, int]) -> dict[int, int]:
    return {t: n - earlier.get(t, 0) for t, n in later.items() if n - earlier.get(t, 0) > 0}


def window(earlier: Snapshot, later: Snapshot) -> Window:
    delta = histogram_delta(later.response_times, earlier.response_times)
    p50, p95, p99 = (percentile(delta, q) for q in PERCENTILES)
    return Window(
        start_s=earlier.at_s,
        end_s=later.at_s,
        users=later.users,
        requests=later.requests - earlier.requests,
        failures=later.failures - earlier.failures,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )
