"""The bridge a trainer gets: progress out (metrics, heartbeat), stop requests in.

`training/rlhf` knows nothing of Django; it calls `on_step(metrics) -> bool` after each step
and `should_stop()` inside long phases. Both renew the run's lease in the same round trip that
reads the stop flag, and run the tripwires on fresh metrics.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from training.models import TrainingRun
from training.services.leases import run_heartbeat
from training.services.runs import run_metrics_record


class LeaseLost(Exception):
    """Another worker owns the run now (it was reaped or aborted): stop without writing anything."""


class RunReporter:
    def __init__(self, *, run: TrainingRun, owner: str, tripwire: Callable[[dict], str | None] | None = None,
                 min_interval_s: float = 0.5):
        self.run = run
        self.owner = owner
        self.tripwire = tripwire
        self.min_interval_s = min_interval_s
        self.stop_requested = False
        self.stop_reason = ""
        self._last_beat = 0.0

    def _beat(self, step: int | None = None) -> bool:
        beat = run_heartbeat(run_id=self.run.id, owner=self.owner, step=step)
        self._last_beat = time.monotonic()
        if beat.lease_lost:
            raise LeaseLost(f"run {self.run.id} lease lost")
        if beat.stop_requested:
            self.stop_requested = True
        return not self.stop_requested

    def should_stop(self) -> bool:
        """Cheap enough to call inside generation and each minibatch: the DB is hit at most every 0.5 s."""
        if self.stop_requested:
            return True
        if time.monotonic() - self._last_beat >= self.min_interval_s:
            self._beat()
        return self.stop_requested

    def on_step(self, metrics: dict) -> bool:
        """Record a step's metrics, renew the lease, run tripwires. False means: checkpoint and stop."""
        step = int(metrics.get("step", self.run.step + 1))
        run_metrics_record(run_id=self.run.id, step=step, metrics={k: v for k, v in metrics.items() if k != "step"})
        self.run.step = step
        if self.tripwire is not None and not self.stop_requested:
            reason = self.tripwire(metrics)
            if reason:
                from training.services.andon import andon_pull

                andon_pull(run=self.run, reason=reason, tripwire=reason.split(":")[0])
        return self._beat(step=step)
