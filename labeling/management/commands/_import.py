"""What the import commands share: project and file arguments, tokenizer, who ran it, and error mapping."""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.errors import LabelingError
from labeling.models import Project


class ImportCommand(BaseCommand):
    """`manage.py <command> PROJECT FILE`: subclasses add arguments and implement `run_import`."""

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug.")
        parser.add_argument("file", type=Path)
        parser.add_argument("--tokenizer", default="", help='"bytes" or a local Hugging Face tokenizer folder, for token-id texts.')
        parser.add_argument("--pad-id", type=int, default=None, help="Strip trailing ids equal to this (2019: 50259).")
        parser.add_argument("--max-bytes", type=int, default=None, help="Override IMPORT_MAX_BYTES for this file.")
        parser.add_argument("--imported-by", default="", metavar="USERNAME",
                            help="The account the import record names as having run it (default: none, a command).")

    def run_import(self, *, project: Project, source: BinaryIO, name: str, tokenizer, options: dict[str, Any]) -> str:
        """Import `source` and return the summary line to print."""
        raise NotImplementedError

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        if options["imported_by"]:
            by = get_user_model().objects.filter(username=options["imported_by"]).first()
            if by is None:
                raise CommandError(f"--imported-by: no account named {options['imported_by']!r}.")
            options["imported_by"] = by
        else:
            options["imported_by"] = None
        try:
            decoder = services.tokenizer_load(options["tokenizer"]) if options["tokenizer"] else None
            with options["file"].open("rb") as f:
                summary = self.run_import(project=project, source=f, name=options["file"].name, tokenizer=decoder,
                                          options=options)
        except OSError as error:
            raise CommandError(str(error)) from error
        except LabelingError as error:
            raise CommandError(f"{options['file']}: {error.message}") from error
        self.stdout.write(summary)
