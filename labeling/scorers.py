"""Simulated labelers: scorers, their scales, and the Bradley–Terry (softmax) chooser.

Pure Python, no Django: the mock-sentiment experiment imports the scorers directly
(`score_sentiment`, `score_length`, `score_copy`). The accounts and the labeling loop that
use them live in `labeling/services/simulation.py`.

A simulated labeler of kind `kind` shown samples x_1..x_K picks sample i with probability

    P(i) = exp(s_i / T) / sum_j exp(s_j / T),    s_i = raw_score(x_i) / scale(kind)

(Bradley–Terry for K = 2, its softmax generalisation for best-of-K, as in the reward loss).
T = 0 is the argmax, ties broken at random. Dividing by the kind's `scale` puts every kind's
scores on about the same footing, so that a temperature means the same noise level whatever
the kind: one unit of normalised score is "a clear difference" for each kind:

| kind      | raw score                                   | scale | one unit means                   |
| --------- | ------------------------------------------- | ----- | -------------------------------- |
| sentiment | VADER compound, in [−1, 1]                  | 1     | neutral → clearly positive       |
| length    | characters after trimming                   | 100   | 100 characters longer            |
| copy      | share of word 3-grams found in the context  | 1     | copied entirely vs not at all    |
| position  | 1 for display slot A down to 0 for the last | 1     | slot A vs the last slot          |
| random    | 0 for every sample                          | 1     | (uniform at any temperature)     |

The default temperature, 0.1, makes a one-unit difference a ~e^10 odds ratio (always the better
one) and a 0.1-unit difference a 73/27 coin: a careful but not perfect labeler.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from labeling.textstats import copy_overlap, text_length

_analyser: SentimentIntensityAnalyzer | None = None


def _vader() -> SentimentIntensityAnalyzer:
    # Built once, on first use: it reads its lexicon file from the installed package (offline).
    global _analyser
    if _analyser is None:
        _analyser = SentimentIntensityAnalyzer()
    return _analyser


def score_sentiment(text: str, context: str = "") -> float:
    """VADER's compound polarity of the text alone, in [−1, 1] (the context is not scored)."""
    return float(_vader().polarity_scores(text)["compound"])


def score_length(text: str, context: str = "") -> float:
    """Characters after trimming whitespace (`labeling.textstats.text_length`)."""
    return float(text_length(text))


def score_copy(text: str, context: str = "") -> float:
    """Share of the text's word 3-grams that occur in the context, in [0, 1] (`copy_overlap`)."""
    return copy_overlap(context, text)


# Text scorers, `(text, context) -> float`: a plain dict so other code can look one up by name.
SCORERS: dict[str, Callable[[str, str], float]] = {
    "sentiment": score_sentiment,
    "length": score_length,
    "copy": score_copy,
}


@dataclass(frozen=True)
class Kind:
    name: str
    scale: float
    default_temperature: float
    description: str


KINDS: dict[str, Kind] = {
    "sentiment": Kind("sentiment", 1.0, 0.1, "prefers the most positive text (VADER compound)"),
    "length": Kind("length", 100.0, 0.1, "prefers the longest text (per 100 characters)"),
    "copy": Kind("copy", 1.0, 0.1, "prefers the text copying most word 3-grams of the context"),
    "position": Kind("position", 1.0, 0.1, "prefers display slot A, then B, …"),
    "random": Kind("random", 1.0, 0.1, "picks uniformly at random"),
}


def scores_for(kind: str, *, context: str, texts: Sequence[str]) -> list[float]:
    """Normalised scores (raw / scale) of `texts` in the order they are displayed (slot A first)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown simulated labeler kind {kind!r}; choose from {', '.join(KINDS)}.")
    k = len(texts)
    if kind == "position":
        return [1.0 - p / (k - 1) if k > 1 else 1.0 for p in range(k)]
    if kind == "random":
        return [0.0] * k
    scale = KINDS[kind].scale
    return [SCORERS[kind](text, context) / scale for text in texts]


def softmax_probabilities(scores: Sequence[float], temperature: float) -> list[float]:
    """P(i) ∝ exp(score_i / T); T = 0 spreads the mass evenly over the argmax ties."""
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"Temperature must be a finite number ≥ 0, got {temperature!r}.")
    if temperature == 0:
        best = max(scores)
        ties = [s == best for s in scores]
        return [t / sum(ties) for t in ties]
    top = max(scores)
    weights = [math.exp((s - top) / temperature) for s in scores]  # minus the max: no overflow
    total = sum(weights)
    return [w / total for w in weights]


def softmax_choice(scores: Sequence[float], temperature: float, rng: random.Random) -> int:
    """Draw index i with probability ∝ exp(score_i / T) (T = 0: argmax, ties at random).

    Gumbel-max: argmax_i(score_i / T + g_i) with g_i standard Gumbel is a softmax draw. One
    noise per sample, in the order given, so a labeler's draw for a given (seed, comparison)
    picks the same canonical sample whatever order the samples were shown in.
    """
    if not scores:
        raise ValueError("Nothing to choose from.")
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"Temperature must be a finite number ≥ 0, got {temperature!r}.")
    noise = [-math.log(-math.log(max(rng.random(), 1e-300))) for _ in scores]
    if temperature == 0:
        best = max(scores)
        return max((i for i, s in enumerate(scores) if s == best), key=lambda i: noise[i])
    return max(range(len(scores)), key=lambda i: scores[i] / temperature + noise[i])


def reading_time_ms(texts: Sequence[str], rng: random.Random, *, context: str = "") -> int:
    """A plausible time to read the context and K samples and answer, with log-normal noise.

    About 20 characters a second (≈ 250 words a minute) plus 2 s to decide; capped at 10 min.
    """
    chars = len(context) + sum(len(t) for t in texts)
    seconds = (2.0 + chars / 20.0) * math.exp(rng.gauss(0.0, 0.3))
    return max(500, min(int(seconds * 1000), 10 * 60 * 1000))
