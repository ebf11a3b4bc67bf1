"""`manage.py import_queries PROJECT FILE`: queries (and samples) from JSON Lines; see labeling/services/imports.py."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.errors import LabelingError
from labeling.models import Project


class Command(BaseCommand):
    help = ('Import queries from JSON Lines: {"context", "reference"?, "external_id"?, "split"?, '
            '"samples"?: [{"text", "source"?, "generation_params"?}]}. All or nothing.')

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug.")
        parser.add_argument("file", type=Path)
        parser.add_argument("--tokenizer", default="", help='"bytes" or a local tokenizer folder, for token-id texts.')
        parser.add_argument("--pad-id", type=int, default=None)
        parser.add_argument("--max-bytes", type=int, default=None, help="Override IMPORT_MAX_BYTES for this file.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        try:
            decoder = services.tokenizer_load(options["tokenizer"]) if options["tokenizer"] else None
            with options["file"].open("rb") as f:
                result = services.queries_import(project=project, source=f, name=options["file"].name,
                                                 tokenizer=decoder, pad_id=options["pad_id"],
                                                 max_bytes=options["max_bytes"])
        except OSError as error:
            raise CommandError(str(error)) from error
        except LabelingError as error:
            raise CommandError(f"{options['file']}: {error.message}") from error
        self.stdout.write(f"{result.lines} lines: {result.queries_created} queries, {result.samples_created} samples.")
