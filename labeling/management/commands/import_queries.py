"""`manage.py import_queries PROJECT FILE`: queries (and samples) from JSON Lines; see labeling/services/imports.py."""
from labeling import services
from labeling.management.commands._import import ImportCommand


class Command(ImportCommand):
    help = ('Import queries from JSON Lines: {"context", "reference"?, "external_id"?, "split"?, '
            '"samples"?: [{"text", "source"?, "generation_params"?}]}. All or nothing.')

    def run_import(self, *, project, source, name, tokenizer, options) -> str:
        result = services.queries_import(project=project, source=source, name=name, tokenizer=tokenizer,
                                         pad_id=options["pad_id"], max_bytes=options["max_bytes"])
        return f"{result.lines} lines: {result.queries_created} queries, {result.samples_created} samples."
