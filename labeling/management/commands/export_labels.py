"""`manage.py export_labels PROJECT [--layout 2019|2020|pairs] [--output FILE]` and the export page's filters
(`--split`, `--created-from/--created-to YYYY-MM-DD`, `--instructions-version N`, `--labeler-kind`,
`--calibration`): labels as JSON Lines."""
from argparse import ArgumentTypeError
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.models import Project, Query
from labeling.selectors.exports import CALIBRATION_CHOICES, EXPORT_LAYOUTS, LABELER_KINDS, labels_export_jsonl


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Export a project's answered labels as JSON Lines (streamed; see labeling/selectors/exports.py)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug.")
        parser.add_argument("--layout", choices=EXPORT_LAYOUTS, default="2019")
        parser.add_argument("--split", choices=Query.Split.values, default=None)
        parser.add_argument("--created-from", type=_day, default=None, metavar="YYYY-MM-DD",
                            help="Labels given on or after this day (the site's time zone).")
        parser.add_argument("--created-to", type=_day, default=None, metavar="YYYY-MM-DD",
                            help="Labels given on or before this day (the site's time zone).")
        parser.add_argument("--instructions-version", type=int, default=None, metavar="N",
                            help="Labels given under this instructions version.")
        parser.add_argument("--labeler-kind", choices=LABELER_KINDS, default=None,
                            help="people (labeling page), simulated, or imported labels only.")
        parser.add_argument("--calibration", choices=CALIBRATION_CHOICES, default="include",
                            help="Include (default), exclude, or keep only the calibration comparisons.")
        parser.add_argument("--output", "-o", default="-", help="File to write; - (default) is standard output.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        filters = {name: options[name] for name in ("split", "created_from", "created_to", "instructions_version",
                                                    "labeler_kind", "calibration")}
        try:
            lines = labels_export_jsonl(project=project, layout=options["layout"], **filters)
        except LabelingError as error:
            raise CommandError(error.message) from error
        n = 0
        if options["output"] == "-":
            for line in lines:
                self.stdout.write(line, ending="")
                n += 1
        else:
            with open(options["output"], "w", encoding="utf-8") as f:
                for line in lines:
                    f.write(line)
                    n += 1
            self.stderr.write(f"{n} lines written to {options['output']}.")
