"""A run's config held three kinds of thing: the library's config, the product's keys and the report.

The product's keys move to `product` and the report to `report`, so that `config` is what the
library reads; reversing puts them back into `config`.
"""
from django.db import migrations, models

# Frozen here rather than read from the model: the product's keys when this migration was written.
PRODUCT_KEYS = ("label_snapshot", "tripwires", "publish_every", "online_sample")


def split_run_config(config: dict, product: dict, report: dict) -> tuple[dict, dict, dict]:
    """(config, product, report) of one old-style row: product keys and the report taken out of `config`."""
    if not isinstance(config, dict):
        return config, product, report
    config = dict(config)
    product = {**(product or {}), **{key: config.pop(key) for key in PRODUCT_KEYS if key in config}}
    moved = config.pop("report", None)
    report = moved if moved is not None else (report or {})
    return config, product, report


def merge_run_config(config: dict, product: dict, report: dict) -> dict:
    """The old-style config of one row: library keys, then the product's keys and the report."""
    merged = {**(config if isinstance(config, dict) else {}), **(product or {})}
    if report:
        merged["report"] = report
    return merged


def split_configs(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.only("id", "config", "product", "report").iterator(chunk_size=500):
        config, product, report = split_run_config(run.config, run.product, run.report)
        if (config, product, report) != (run.config, run.product, run.report):
            TrainingRun.objects.filter(id=run.id).update(config=config, product=product, report=report)


def merge_configs(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.only("id", "config", "product", "report").iterator(chunk_size=500):
        merged = merge_run_config(run.config, run.product, run.report)
        if merged != run.config:
            TrainingRun.objects.filter(id=run.id).update(config=merged)


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0002_andon_pull_at_step"),
    ]

    operations = [
        migrations.AlterField(
            model_name="trainingrun",
            name="config",
            field=models.JSONField(
                blank=True, default=dict,
                help_text="RewardFitConfig or PPOConfig fields, or a sample run's sampling settings.",
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="product",
            field=models.JSONField(
                blank=True, default=dict,
                help_text="tripwires, label_snapshot, publish_every and online_sample (PRODUCT_KEYS).",
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="report",
            field=models.JSONField(
                blank=True, default=dict, help_text="What the run produced for its page, e.g. figures.",
            ),
        ),
        migrations.RunPython(split_configs, merge_configs),
    ]
