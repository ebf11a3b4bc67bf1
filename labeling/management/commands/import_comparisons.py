"""`manage.py import_comparisons PROJECT FILE`: comparisons (and labels) in the 2019 or 2020 layout.

See labeling/services/imports.py for the layouts and whom imported labels belong to: labels under an
account that exists (other than one an earlier import of the project created) need --labelers-existing.
"""
from django.core.management.base import CommandError

from labeling import services
from labeling.errors import ExistingAccounts
from labeling.management.commands._import import ImportCommand
from labeling.models import Import
from labeling.services.imports import DEFAULT_IMPORT_LABELER, LAYOUTS


class Command(ImportCommand):
    help = ('Import comparisons: 2019 layout {"query", "sample0".."sample{K-1}", "best"?} or 2020 layout '
            '{"info", "summaries", "choice", "worker", "split"}. All or nothing.')

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--layout", choices=LAYOUTS, default="auto")
        parser.add_argument("--labeler", default=DEFAULT_IMPORT_LABELER,
                            help="Account for labels of lines without labeler/worker (created as a contractor).")
        parser.add_argument("--batch", default="")
        parser.add_argument("--calibration", action="store_true", help="Mark the comparisons as calibration items.")
        parser.add_argument("--labelers-existing", action="append", default=[], metavar="NAMES",
                            help="Existing accounts the file may write labels under (comma-separated, repeatable). "
                                 "Without it a file naming one is refused, naming each account and its lines.")

    def run_import(self, *, project, source, name, tokenizer, options) -> str:
        listed = [n.strip() for value in options["labelers_existing"] for n in value.split(",") if n.strip()]
        try:
            result = services.comparisons_import(
                project=project, source=source, name=name, layout=options["layout"], tokenizer=tokenizer,
                pad_id=options["pad_id"], labeler_username=options["labeler"], batch=options["batch"],
                is_calibration=options["calibration"], max_bytes=options["max_bytes"], labelers_existing=listed,
                imported_by=options["imported_by"], via=Import.Via.COMMAND,
            )
        except ExistingAccounts as error:  # the option to add, spelt as this command takes it
            names = ",".join([*listed, *error.accounts])
            raise CommandError(f"{name}: {error.message} (--labelers-existing {names})") from error
        lines = [
            f"{result.lines} lines: {result.comparisons_created} comparisons, {result.labels_created} labels, "
            f"{result.queries_created} queries, {result.samples_created} samples, "
            f"{result.labelers_created} labeler accounts created (import {result.import_id}).",
            f"Accounts created: {', '.join(result.accounts_created) or 'none'}.",
            f"Written under existing accounts (listed): {', '.join(result.accounts_existing) or 'none'}.",
        ]
        if result.accounts_reused:
            lines.append(f"Written under earlier imports' accounts: {', '.join(result.accounts_reused)}.")
        if result.previously_imported:
            lines.append("The same file was imported into this project before (import "
                         f"{', '.join(map(str, result.previous_import_ids))}).")
        return "\n".join(lines)
