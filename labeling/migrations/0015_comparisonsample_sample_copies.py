"""ComparisonSample keeps copies of its sample's source and text length (see the model): added nullable, filled
for the rows written before (one UPDATE, PostgreSQL and SQLite alike), then made NOT NULL."""

from django.db import migrations, models


def copy_from_samples(apps, schema_editor):
    entries = apps.get_model("labeling", "ComparisonSample")._meta.db_table
    samples = apps.get_model("labeling", "Sample")._meta.db_table
    schema_editor.execute(
        f"UPDATE {entries} SET"
        f" sample_source = (SELECT s.source FROM {samples} s WHERE s.id = {entries}.sample_id),"
        f" sample_text_length = (SELECT s.text_length FROM {samples} s WHERE s.id = {entries}.sample_id)"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0014_sample_text_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="comparisonsample",
            name="sample_source",
            field=models.CharField(editable=False, help_text="The sample's source, copied.", max_length=200,
                                   null=True),
        ),
        migrations.AddField(
            model_name="comparisonsample",
            name="sample_text_length",
            field=models.PositiveIntegerField(editable=False, help_text="The sample's text length, copied.",
                                              null=True),
        ),
        migrations.RunPython(copy_from_samples, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="comparisonsample",
            name="sample_source",
            field=models.CharField(editable=False, help_text="The sample's source, copied.", max_length=200),
        ),
        migrations.AlterField(
            model_name="comparisonsample",
            name="sample_text_length",
            field=models.PositiveIntegerField(editable=False, help_text="The sample's text length, copied."),
        ),
    ]
