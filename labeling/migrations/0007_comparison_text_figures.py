"""Comparison.length_top / copy_top / text_chars: the texts' figures the shortcut detectors read,
kept at write time instead of computed on a dashboard's first request; existing rows backfilled."""
from django.db import migrations, models
from psycopg2.extras import execute_values

from labeling.textstats import text_figures_by_comparison

BATCH = 2000


def backfill(apps, schema_editor):
    """Figures of every existing comparison, in batches of BATCH (pure function: labeling.textstats)."""
    Comparison = apps.get_model("labeling", "Comparison")
    ComparisonSample = apps.get_model("labeling", "ComparisonSample")
    ids = list(Comparison.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start: start + BATCH]
        contexts = {c: (context, k) for c, context, k in
                    Comparison.objects.filter(id__in=chunk).values_list("id", "query__context", "project__k")}
        entries = ComparisonSample.objects.filter(comparison_id__in=chunk).values_list(
            "comparison_id", "position", "sample__text")
        figures = text_figures_by_comparison(entries, contexts)
        if schema_editor.connection.vendor == "postgresql":  # bulk_update's CASE costs 10× more here
            with schema_editor.connection.cursor() as cursor:
                execute_values(cursor, f"UPDATE {Comparison._meta.db_table} c SET length_top = v.l, copy_top = v.c, "
                               "text_chars = v.n FROM (VALUES %s) v(id, l, c, n) WHERE c.id = v.id",
                               [(c, *f) for c, f in figures.items()], page_size=BATCH)
            continue
        Comparison.objects.bulk_update(
            [Comparison(id=c, length_top=f[0], copy_top=f[1], text_chars=f[2]) for c, f in figures.items()],
            ["length_top", "copy_top", "text_chars"], batch_size=500,
        )


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0006_hotpath_functions"),
    ]

    operations = [
        migrations.AddField(
            model_name="comparison",
            name="copy_top",
            field=models.PositiveSmallIntegerField(blank=True, editable=False, help_text="Bit mask of the samples tied for the highest word 3-gram overlap with the context.", null=True),
        ),
        migrations.AddField(
            model_name="comparison",
            name="length_top",
            field=models.PositiveSmallIntegerField(blank=True, editable=False, help_text="Bit mask of the samples tied for the longest text.", null=True),
        ),
        migrations.AddField(
            model_name="comparison",
            name="text_chars",
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="Characters of the context and every sample.", null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
