"""Reads of the import page: a project's imports, newest first, and one of them (scoped to its project)."""
from __future__ import annotations

from django.http import Http404

from labeling.models import Import, Project

IMPORTS_LISTED = 50


def imports_for_project(project: Project, *, limit: int = IMPORTS_LISTED) -> list[Import]:
    """The project's most recent imports (any status), newest first, with who ran them: one query."""
    return list(Import.objects.filter(project=project).select_related("imported_by").order_by("-id")[:limit])


def import_get_for_project(*, project: Project, import_id: int) -> Import:
    """The import with this id if it belongs to `project` (fetched for a researcher); 404 otherwise."""
    record = Import.objects.filter(project=project, id=import_id).select_related("imported_by").first()
    if record is None:
        raise Http404("No such import.")
    return record


def import_accounts(record: Import) -> dict[str, list[str]]:
    """The accounts an import created, wrote under again, and wrote under as listed existing accounts."""
    return {
        "created": sorted(record.accounts_created.values_list("username", flat=True)),
        "reused": sorted(record.accounts_reused.values_list("username", flat=True)),
        "existing": sorted(record.accounts_existing.values_list("username", flat=True)),
    }
