"""`manage.py import_comparisons PROJECT FILE`: comparisons (and labels) in the 2019 or 2020 layout.

See labeling/services/imports.py for the layouts and whom imported labels belong to.
"""
from labeling import services
from labeling.management.commands._import import ImportCommand
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

    def run_import(self, *, project, source, name, tokenizer, options) -> str:
        result = services.comparisons_import(
            project=project, source=source, name=name, layout=options["layout"], tokenizer=tokenizer,
            pad_id=options["pad_id"], labeler_username=options["labeler"], batch=options["batch"],
            is_calibration=options["calibration"], max_bytes=options["max_bytes"],
        )
        return (
            f"{result.lines} lines: {result.comparisons_created} comparisons, {result.labels_created} labels, "
            f"{result.queries_created} queries, {result.samples_created} samples, "
            f"{result.labelers_created} labeler accounts created."
        )
