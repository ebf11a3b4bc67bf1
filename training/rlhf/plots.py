"""The mock-sentiment experiment's two figures as PNG files (matplotlib, Agg; no Django).

Used by the library bench (``bench/mock_sentiment.py``) and the product's experiment
(``training/services/experiment.py``), whose run page shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PolicyPoint:
    """A tuned policy's held-out evaluation, with its training trajectory when it is in true-score units."""

    label: str
    kl: float
    mean_score: float
    trajectory: Sequence[tuple[float, float]] = field(default_factory=list)  # (KL, true score) per step


@dataclass
class SweepCurve:
    """One PPO run's held-out checkpoints: win rate over the base and the reward model's score at each √KL."""

    label: str
    sqrt_kl: Sequence[float]
    win_rate: Sequence[float]
    rm_score: Sequence[float]


@dataclass
class AccuracySeries:
    label: str
    values: Sequence[float]
    chance: float


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, path: Path | str, *, xlabel: str, ylabel: str, title: str, legend_size: int) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_score_vs_kl(path: Path | str, *, base_score: float, points: Sequence[PolicyPoint], ylabel: str,
                     kl_limit: float | None = None) -> str:
    """Held-out mean true score against KL from the base: the base at KL 0, a dot per policy, and
    its training curve (or a dotted line from the base when it has none)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([0.0], [base_score], color="black", label="base", zorder=3)
    for point in points:
        if point.trajectory:
            xs, ys = zip(*point.trajectory)
            line = ax.plot(xs, ys, alpha=0.35, linewidth=1)[0]
        else:
            line = ax.plot([0.0, point.kl], [base_score, point.mean_score], linestyle=":", linewidth=1)[0]
        ax.scatter([point.kl], [point.mean_score], color=line.get_color(), label=point.label, zorder=3)
    if kl_limit is not None:
        ax.axvline(kl_limit, color="grey", linestyle=":", linewidth=1)
    return _finish(plt, fig, ax, path, xlabel="KL from base (nats per response)", ylabel=ylabel,
                   title="True score against KL (dots: held-out evaluation)", legend_size=7)


def plot_rm_accuracy(path: Path | str, *, labels: Sequence[int], series: Sequence[AccuracySeries]) -> str:
    """Reward-model held-out accuracy against the number of labels (log x), each series with its chance line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for marker, s in zip("os^v", series):
        line = ax.plot(labels, s.values, marker=marker, label=f"{s.label} (chance {s.chance:.2f})")[0]
        ax.axhline(s.chance, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xticks(labels, [str(n) for n in labels])
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    return _finish(plt, fig, ax, path, xlabel="labels (best-of-K comparisons)", ylabel="held-out accuracy",
                   title="Reward-model validation accuracy against labels", legend_size=8)


def plot_overoptimisation(path: Path | str, *, curves: Sequence[SweepCurve]) -> str:
    """Over-optimisation along training: the true win rate over the base (left) and the reward model's
    score (right) against √KL, one line per run, a point per held-out checkpoint."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for marker, curve in zip("os^vD<>p", curves):
        line = left.plot(curve.sqrt_kl, curve.win_rate, marker=marker, markersize=3, label=curve.label)[0]
        right.plot(curve.sqrt_kl, curve.rm_score, marker=marker, markersize=3, color=line.get_color(), label=curve.label)
    left.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    left.set_ylim(0, 1)
    left.set_xlabel("√KL from the base (√nats per response)")
    left.set_ylabel("true win rate over the base")
    left.set_title("Simulated labelers' truth (VADER)")
    left.legend(fontsize=7)
    return _finish(plt, fig, right, path, xlabel="√KL from the base (√nats per response)",
                   ylabel="reward model score (normalised)", title="What PPO maximised", legend_size=7)
