"""Import: every import is recorded (file, content hash, who ran it, counts, the accounts it created or
wrote under), and imported comparisons and labels point at theirs (`source_import`). Existing rows keep
NULL: what imported them before this migration is not known."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0008_label_display_position"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Import",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(choices=[("queries", "Queries"), ("comparisons", "Comparisons")],
                                          max_length=12)),
                ("layout", models.CharField(
                    blank=True, help_text='"2019" or "2020" for comparisons; blank for queries.', max_length=10)),
                ("file_name", models.CharField(blank=True, max_length=255)),
                ("sha256", models.CharField(
                    help_text="Of the file's bytes: the same file imported again is recognised.", max_length=64)),
                ("size_bytes", models.PositiveBigIntegerField(default=0)),
                ("via", models.CharField(
                    choices=[("api", "API"), ("command", "Management command"), ("code", "Code")], default="code",
                    max_length=10)),
                ("batch", models.CharField(blank=True, max_length=100)),
                ("is_calibration", models.BooleanField(default=False)),
                ("lines", models.PositiveIntegerField(default=0)),
                ("queries_created", models.PositiveIntegerField(default=0)),
                ("samples_created", models.PositiveIntegerField(default=0)),
                ("comparisons_created", models.PositiveIntegerField(default=0)),
                ("labels_created", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("accounts_created", models.ManyToManyField(
                    blank=True, related_name="+", to=settings.AUTH_USER_MODEL,
                    help_text="Contractor accounts (no usable password) this import created for the file's labelers.")),
                ("accounts_existing", models.ManyToManyField(
                    blank=True, related_name="+", to=settings.AUTH_USER_MODEL,
                    help_text="Accounts that existed before and were written under because the importer listed them.")),
                ("imported_by", models.ForeignKey(
                    blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                    to=settings.AUTH_USER_MODEL)),
                ("project", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="imports", to="labeling.project")),
            ],
            options={"ordering": ["id"]},
        ),
        migrations.AddField(
            model_name="comparison",
            name="source_import",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.RESTRICT, related_name="comparisons",
                to="labeling.import", help_text="The import that created it; null for comparisons made here."),
        ),
        migrations.AddField(
            model_name="label",
            name="source_import",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.RESTRICT, related_name="labels",
                to="labeling.import",
                help_text="The import that wrote it (duration 0, identity order); null for labels given here."),
        ),
        migrations.AddIndex(
            model_name="import",
            index=models.Index(fields=["project", "sha256"], name="import_project_sha256"),
        ),
    ]
