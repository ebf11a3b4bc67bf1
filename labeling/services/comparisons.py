"""Creating and withdrawing comparisons, and what the write paths keep beside them for the dashboards.

comparison_create and the imports store each comparison's text figures (`Comparison.length_top`,
`copy_top`, `text_chars`), label_submit and the imports each label's `display_position`; the
migrations backfilled older rows. These services fill rows written around them (bulk loads,
scripts) and refresh figures after an edit; the dashboards call them when they meet a gap."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from psycopg2.extras import execute_values

from labeling.errors import InvalidInput
from labeling.models import Assignment, Comparison, ComparisonSample, Project, Query, Sample
from labeling.textstats import comparison_text_figures, text_figures_by_comparison

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


def comparisons_withdraw(*, comparison_ids: list[int]) -> int:
    """Take comparisons out of the labeling queue (andon cord); live leases on them end."""
    with transaction.atomic():
        n = Comparison.objects.filter(id__in=comparison_ids, status=Comparison.Status.ACTIVE).update(
            status=Comparison.Status.WITHDRAWN
        )
        Assignment.objects.filter(comparison_id__in=comparison_ids, state=Assignment.State.LEASED).update(
            state=Assignment.State.WITHDRAWN
        )
    return n


def comparison_create(*, project: Project, query: Query, samples: list[Sample], is_calibration: bool = False,
                      labels_wanted: int | None = None, batch: str = "", external_id: str = "") -> Comparison:
    """A comparison of exactly K samples of one query, in the given (canonical) order."""
    if len(samples) != project.k:
        raise InvalidInput(f"A comparison in this project needs exactly {project.k} samples, got {len(samples)}.")
    if any(s.query_id != query.id for s in samples):
        raise InvalidInput("Every sample of a comparison must belong to its query.")
    # Calibration comparisons are labeled by researchers and by many labelers (their agreement is
    # what the dashboards measure), so they want more labels than an ordinary comparison.
    default = max(project.calibration_labels_wanted, project.labels_per_comparison) if is_calibration \
        else project.labels_per_comparison
    wanted = labels_wanted or default
    length_top, copy_top, text_chars = comparison_text_figures(query.context, [s.text for s in samples])
    with transaction.atomic():
        comparison = Comparison.objects.create(
            project=project, query=query, labels_wanted=wanted, open_slots=wanted,
            is_calibration=is_calibration, batch=batch, external_id=external_id,
            length_top=length_top, copy_top=copy_top, text_chars=text_chars,
        )
        ComparisonSample.objects.bulk_create(
            ComparisonSample.of(comparison, s, i) for i, s in enumerate(samples)
        )
    return comparison
