"""Plain text statistics shared by the labeler-quality detectors and the simulated labelers.

Pure functions, no database: the copy detector and the `copy` simulated labeler must agree on
what "copies the context" means, so both call `copy_overlap`.
"""
from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore runs)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def copy_overlap(context: str, text: str, n: int = 3) -> float:
    """Share of the text's word n-grams that also occur in the context (0 when it has none).

    The 2019 summarisation labelers preferred samples that copied whole sentences of the
    post; this is the score that preference follows. Texts shorter than n words fall back to
    shorter n-grams so that short samples still get a meaningful score.
    """
    text_words = words(text)
    context_words = words(context)
    size = min(n, len(text_words))
    if size == 0:
        return 0.0
    text_grams = ngrams(text_words, size)
    return len(text_grams & ngrams(context_words, size)) / len(text_grams)


def text_length(text: str) -> int:
    """Length used by the length-preference checks: characters after trimming whitespace."""
    return len(text.strip())


def copy_overlaps(context: str, texts: list[str], n: int = 3) -> list[float]:
    """`[copy_overlap(context, t, n) for t in texts]`, tokenising the context once (dashboards score 100k samples)."""
    context_words = words(context)
    context_grams: dict[int, set[tuple[str, ...]]] = {}
    out = []
    for text in texts:
        text_words = words(text)
        size = min(n, len(text_words))
        if size == 0:
            out.append(0.0)
            continue
        if size not in context_grams:
            context_grams[size] = ngrams(context_words, size)
        text_grams = ngrams(text_words, size)
        out.append(len(text_grams & context_grams[size]) / len(text_grams))
    return out


def top_mask(values) -> int:
    """Bit mask of the indices tied at the maximum (bit i = index i); 0 for no values."""
    if not values:
        return 0
    best = max(values)
    return sum(1 << i for i, v in enumerate(values) if v == best)


def comparison_text_figures(context: str, texts: list[str]) -> tuple[int, int, int]:
    """What the dashboards keep per comparison: (length_top, copy_top, chars).

    length_top / copy_top: bit masks of the samples (canonical indices) tied for the longest
    `text_length` and the highest `copy_overlap` with the context; chars: characters to read,
    context plus every sample. Pure: the write paths, the backfill migration and the dashboards'
    fill of rows written around them all call this.
    """
    lengths = [text_length(t) for t in texts]
    return top_mask(lengths), top_mask(copy_overlaps(context, texts)), len(context) + sum(len(t) for t in texts)


def text_figures_by_comparison(entries, contexts: dict[int, tuple[str, int]]) -> dict[int, tuple[int, int, int]]:
    """`comparison_text_figures` of many comparisons from database rows.

    entries: (comparison id, canonical position, sample text) rows; contexts: {comparison id:
    (its query's context, the project's K)}. A comparison whose samples are not exactly K gets
    masks 0, which the detectors skip (they cannot judge "the longest of K" then).
    """
    texts: dict[int, dict[int, str]] = {}
    for comparison_id, position, text in entries:
        texts.setdefault(comparison_id, {})[position] = text
    out = {}
    for comparison_id, (context, k) in contexts.items():
        by_position = texts.get(comparison_id, {})
        ordered = [by_position[p] for p in sorted(by_position)]
        length_top, copy_top, chars = comparison_text_figures(context, ordered)
        if len(ordered) != k:
            length_top = copy_top = 0
        out[comparison_id] = (length_top, copy_top, chars)
    return out
