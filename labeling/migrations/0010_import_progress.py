"""Import: the import page's records. A big file is imported by a task, so its Import exists before
its rows (status queued/running, progress, error, the options it runs with); imports written so far
were all done in one transaction, hence the default "done". Also which import accounts an import
wrote under again (accounts_reused), for the page's summary."""
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0009_import_records"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="import",
            name="accounts_reused",
            field=models.ManyToManyField(
                blank=True, related_name="+", to=settings.AUTH_USER_MODEL,
                help_text="Import accounts of earlier imports of this project written under again (no listing needed)."),
        ),
        migrations.AddField(
            model_name="import",
            name="status",
            field=models.CharField(
                choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                default="done", max_length=10),
        ),
        migrations.AddField(
            model_name="import",
            name="progress_done",
            field=models.PositiveIntegerField(default=0, help_text="Records read so far (a task's import)."),
        ),
        migrations.AddField(
            model_name="import",
            name="progress_total",
            field=models.PositiveIntegerField(default=0, help_text="Records in the file (a task's import)."),
        ),
        migrations.AddField(
            model_name="import",
            name="error",
            field=models.TextField(blank=True, help_text="Why a task's import failed; it wrote nothing."),
        ),
        migrations.AddField(
            model_name="import",
            name="options",
            field=models.JSONField(
                blank=True, default=dict,
                help_text="What a task's import runs with: layout, tokenizer, pad_id, labeler, labelers_existing."),
        ),
        migrations.AlterField(
            model_name="import",
            name="via",
            field=models.CharField(
                choices=[("api", "API"), ("command", "Management command"), ("code", "Code"), ("web", "Import page")],
                default="code", max_length=10),
        ),
    ]
