"""`manage.py import_comparisons PROJECT FILE`: comparisons (and labels) in the 2019 or 2020 layout.

See labeling/services/imports.py for the layouts and whom imported labels belong to.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.errors import LabelingError
from labeling.models import Project
from labeling.services.imports import DEFAULT_IMPORT_LABELER, LAYOUTS


class Command(BaseCommand):
    help = ('Import comparisons: 2019 layout {"query", "sample0".."sample{K-1}", "best"?} or 2020 layout '
            '{"info", "summaries", "choice", "worker", "split"}. All or nothing.')

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug.")
        parser.add_argument("file", type=Path)
        parser.add_argument("--layout", choices=LAYOUTS, default="auto")
        parser.add_argument("--tokenizer", default="", help='"bytes" or a local Hugging Face tokenizer folder.')
        parser.add_argument("--pad-id", type=int, default=None, help="Strip trailing ids equal to this (2019: 50259).")
        parser.add_argument("--labeler", default=DEFAULT_IMPORT_LABELER,
                            help="Account for labels of lines without labeler/worker (created as a contractor).")
        parser.add_argument("--batch", default="")
        parser.add_argument("--calibration", action="store_true", help="Mark the comparisons as calibration items.")
        parser.add_argument("--max-bytes", type=int, default=None, help="Override IMPORT_MAX_BYTES for this file.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        try:
            decoder = services.tokenizer_load(options["tokenizer"]) if options["tokenizer"] else None
            with options["file"].open("rb") as f:
                result = services.comparisons_import(
                    project=project, source=f, name=options["file"].name, layout=options["layout"], tokenizer=decoder,
                    pad_id=options["pad_id"], labeler_username=options["labeler"], batch=options["batch"],
                    is_calibration=options["calibration"], max_bytes=options["max_bytes"],
                )
        except OSError as error:
            raise CommandError(str(error)) from error
        except LabelingError as error:
            raise CommandError(f"{options['file']}: {error.message}") from error
        self.stdout.write(
            f"{result.lines} lines: {result.comparisons_created} comparisons, {result.labels_created} labels, "
            f"{result.queries_created} queries, {result.samples_created} samples, "
            f"{result.labelers_created} labeler accounts created."
        )
