"""KL coefficient controllers (Ziegler et al. 2019, "fine-tuning details"; 2019 ``train_policy.py``)."""

from __future__ import annotations

from typing import Any


class FixedKL:
    """A constant KL coefficient beta; ``update`` does nothing."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Keep beta unchanged whatever the measured KL."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "fixed", "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKL:
    """Proportional controller that steers the measured KL towards ``target`` nats.

    After each batch of ``n_steps`` episodes: ``e = clip(KL / target - 1, -0.2, 0.2)`` and
    ``beta <- beta * (1 + e * n_steps / horizon)``; beta therefore changes by at most
    ``0.2 * n_steps / horizon`` of itself per update, and moves up when KL is above target.
    """

    def __init__(self, init: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"AdaptiveKL needs target > 0 and horizon > 0, got {target=}, {horizon=}")
        self.value = float(init)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Move beta towards the value that would hold KL at the target."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "adaptive", "value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.horizon = int(state["horizon"])
