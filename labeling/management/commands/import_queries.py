"""`manage.py import_queries PROJECT FILE`: queries (and samples) from JSON Lines; see labeling/services/imports.py."""
from labeling import services
from labeling.management.commands._import import ImportCommand
from labeling.models import Import


class Command(ImportCommand):
    help = ('Import queries from JSON Lines: {"context", "reference"?, "external_id"?, "split"?, '
            '"samples"?: [{"text", "source"?, "generation_params"?}]}. All or nothing.')

    def run_import(self, *, project, source, name, tokenizer, options) -> str:
        result = services.queries_import(project=project, source=source, name=name, tokenizer=tokenizer,
                                         pad_id=options["pad_id"], max_bytes=options["max_bytes"],
                                         imported_by=options["imported_by"], via=Import.Via.COMMAND)
        summary = f"{result.lines} lines: {result.queries_created} queries, {result.samples_created} samples."
        if result.previously_imported:
            earlier = ", ".join(map(str, result.previous_import_ids))
            summary += f"\nThe same file was imported into this project before (import {earlier})."
        return summary
