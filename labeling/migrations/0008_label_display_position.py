"""Label.display_position: where on screen the chosen sample was, kept on the label so that the
dashboards read a project's labels without joining every assignment (bench/dashboard_load.py).
Existing labels are backfilled from their assignments; on PostgreSQL labeling_submit stores it."""
from django.db import migrations, models

from labeling.sql import LoadSQL

# The one statement of labeling_submit this migration changed. labels.sql holds the new one since
# 0006 loads the file, so the load below changes nothing on a fresh database; on one migrated before
# the files existed it installs what this migration's string patch did. Reverse: the old statement.
_INSERT_0006 = (
    "    INSERT INTO labeling_label (assignment_id, comparison_id, labeler_id, chosen_index, unsure, skipped,"
    " skip_reason,\n"
    "                         duration_ms, instructions_id, created_at)\n"
    "    VALUES (a.id, a.comparison_id, p_labeler, v_chosen, p_unsure, p_skipped, p_skip_reason, v_duration,\n"
    "            a.instructions_id, p_created)")
_INSERT = (
    "    INSERT INTO labeling_label (assignment_id, comparison_id, labeler_id, chosen_index, display_position, unsure,"
    " skipped,\n"
    "                         skip_reason, duration_ms, instructions_id, created_at)\n"
    "    VALUES (a.id, a.comparison_id, p_labeler, v_chosen, CASE WHEN p_skipped THEN NULL ELSE p_position END,"
    " p_unsure,\n"
    "            p_skipped, p_skip_reason, v_duration, a.instructions_id, p_created)")


def submit_before(text: str) -> str:
    """labels.sql as 0006 wrote it: this migration's INSERT back to the one without display_position."""
    assert text.count(_INSERT) == 1, "labels.sql no longer holds the INSERT this migration added"
    return text.replace(_INSERT, _INSERT_0006)


BATCH = 5000


def backfill(apps, schema_editor):
    """display_order.index(chosen_index) of every answered label (a choice missing from its order stays NULL)."""
    Label = apps.get_model("labeling", "Label")
    if schema_editor.connection.vendor == "postgresql":
        positions = " ".join(f"WHEN (a.display_order ->> {p})::int THEN {p}" for p in range(8))
        schema_editor.execute(
            f"UPDATE {Label._meta.db_table} l SET display_position = CASE l.chosen_index {positions} END "
            f"FROM {apps.get_model('labeling', 'Assignment')._meta.db_table} a "
            "WHERE a.id = l.assignment_id AND l.chosen_index IS NOT NULL AND l.display_position IS NULL")
        return
    answered = Label.objects.filter(chosen_index__isnull=False, display_position__isnull=True).order_by("id")
    last = 0
    while True:
        rows = list(answered.filter(id__gt=last).values_list("id", "chosen_index", "assignment__display_order")[:BATCH])
        if not rows:
            return
        last = rows[-1][0]
        Label.objects.bulk_update(
            [Label(id=i, display_position=list(order).index(chosen)) for i, chosen, order in rows if chosen in order],
            ["display_position"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0007_comparison_text_figures"),
    ]

    operations = [
        migrations.AddField(
            model_name="label",
            name="display_position",
            field=models.PositiveSmallIntegerField(blank=True, help_text="Where on screen the chosen sample was (0 = A); null when skipped.", null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        LoadSQL("labels.sql", digest="b0dc5cf06f76072c", reverse_sql=submit_before),
    ]
