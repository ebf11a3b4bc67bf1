"""`manage.py export_labels PROJECT [--layout 2019|2020|pairs] [--output FILE]`: labels as JSON Lines."""
from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from labeling.models import Project, Query
from labeling.selectors.exports import EXPORT_LAYOUTS, labels_export_jsonl


class Command(BaseCommand):
    help = "Export a project's answered labels as JSON Lines (streamed; see labeling/selectors_export.py)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug.")
        parser.add_argument("--layout", choices=EXPORT_LAYOUTS, default="2019")
        parser.add_argument("--split", choices=Query.Split.values, default=None)
        parser.add_argument("--output", "-o", default="-", help="File to write; - (default) is standard output.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        try:
            lines = labels_export_jsonl(project=project, layout=options["layout"], split=options["split"])
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
