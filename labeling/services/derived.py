"""What the write paths keep beside the data for the dashboards, computed again where it is missing.

comparison_create and the imports store each comparison's text figures (`Comparison.length_top`,
`copy_top`, `text_chars`), label_submit and the imports each label's `display_position`; the
migrations backfilled older rows. These services fill rows written around them (bulk loads,
scripts) and refresh figures after an edit; the dashboards call them when they meet a gap.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from psycopg2.extras import execute_values

from labeling.models import Comparison, ComparisonSample, Label
from labeling.textstats import text_figures_by_comparison

TEXT_FIGURES_BATCH = 2000


def comparisons_text_figures_fill(*, comparison_ids: Iterable[int], refresh: bool = False) -> int:
    """Store length_top, copy_top and text_chars of these comparisons; returns how many rows were written.

    Only rows still NULL unless `refresh` (after an edit of a sample, a context or a comparison's
    query). The services fill them when they create comparisons; this covers rows written around
    them and edits. Idempotent: two processes filling the same rows write the same values.
    """
    ids = sorted(set(comparison_ids))
    written = 0
    for start in range(0, len(ids), TEXT_FIGURES_BATCH):
        chunk = Comparison.objects.filter(id__in=ids[start: start + TEXT_FIGURES_BATCH])
        if not refresh:
            chunk = chunk.filter(length_top__isnull=True)
        contexts = {c: (context, k) for c, context, k in chunk.values_list("id", "query__context", "project__k")}
        if not contexts:
            continue
        entries = ComparisonSample.objects.filter(comparison_id__in=list(contexts)).values_list(
            "comparison_id", "position", "sample__text")
        figures = text_figures_by_comparison(entries, contexts)
        _text_figures_write(figures)
        written += len(figures)
    return written


def _text_figures_write(figures: dict[int, tuple[int, int, int]]) -> None:
    if connection.vendor == "postgresql":  # one UPDATE … FROM (VALUES …): bulk_update's CASE costs 10× more
        with connection.cursor() as cursor:
            execute_values(cursor, f"UPDATE {Comparison._meta.db_table} c SET length_top = v.length_top, "
                           "copy_top = v.copy_top, text_chars = v.text_chars "
                           "FROM (VALUES %s) v(id, length_top, copy_top, text_chars) WHERE c.id = v.id",
                           [(c, *f) for c, f in figures.items()], page_size=TEXT_FIGURES_BATCH)
        return
    Comparison.objects.bulk_update([Comparison(id=c, length_top=f[0], copy_top=f[1], text_chars=f[2])
                                    for c, f in figures.items()], ["length_top", "copy_top", "text_chars"], batch_size=500)


def labels_display_position_fill(*, label_ids: Iterable[int]) -> int:
    """Store display_position (= assignment.display_order.index(chosen_index)) of these answered labels
    where it is NULL (labels written around label_submit and the imports); returns how many were written.
    A choice missing from its display order stays NULL."""
    rows = Label.objects.filter(id__in=list(label_ids), chosen_index__isnull=False, display_position__isnull=True
                                ).values_list("id", "chosen_index", "assignment__display_order")
    filled = [Label(id=i, display_position=list(order).index(chosen)) for i, chosen, order in rows if chosen in order]
    Label.objects.bulk_update(filled, ["display_position"], batch_size=500)
    return len(filled)
