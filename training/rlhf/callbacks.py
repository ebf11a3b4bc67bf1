"""How the library talks to its caller: progress goes out through ``on_log``/``on_step`` callbacks,
stop requests come in through ``should_stop`` (checked inside long phases) or ``on_step`` returning
False. The library never polls a database or a broker itself."""

from __future__ import annotations

from collections.abc import Callable

Metrics = dict[str, float]
OnLog = Callable[[Metrics], None]
OnStep = Callable[[Metrics], bool]
ShouldStop = Callable[[], bool]


class StopRequested(Exception):
    """Raised inside a long phase when ``should_stop()`` returned True; caught by the loop that owns
    the phase, which then leaves the run in a consistent, checkpointable state."""
