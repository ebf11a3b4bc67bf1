"""Researchers' instructions pages: versions with label counts, the editor (with a sanitised
preview) that publishes a new version, and a diff between any two versions.
And the labeler's acknowledgement of the current version, from the labeling page."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from labeling import services
from labeling.errors import InvalidInput, LabelingError
from labeling.selectors import project_get_for_labeler, project_get_for_researcher
from labeling.selectors.instructions import (
    instructions_current,
    instructions_get_version,
    instructions_versions,
    text_diff,
)
from labeling.services.instructions import MAX_BODY_CHARS
from labeling.views.serving import _int_or_none


@require_GET
@login_required
def labeling_instructions_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    versions = list(instructions_versions(project))
    return render(request, "labeling/instructions_list.html", {"project": project, "versions": versions})


@require_http_methods(["GET", "POST"])
@login_required
def labeling_instructions_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the editor, holding the current text. POST: publish it as a new version (400 and
    the editor again, text kept, when it is empty or unchanged)."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    current = instructions_current(project)
    if request.method == "GET":
        return render(request, "labeling/instructions_edit.html",
                      {"project": project, "current": current, "body": current.body if current else ""})
    body = request.POST.get("body", "")
    try:
        services.instructions_publish(project=project, body=body, author=request.user)
    except LabelingError as error:
        return render(request, "labeling/instructions_edit.html",
                      {"project": project, "current": current, "body": body, "error": error.message},
                      status=error.status_code)
    return redirect("labeling-instructions-list", slug=project.slug)


@require_POST
@login_required
def labeling_instructions_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The #preview partial: the posted Markdown rendered exactly as labelers will see it (sanitised)."""
    project_get_for_researcher(slug=slug, user=request.user)
    body = request.POST.get("body", "")[: MAX_BODY_CHARS]
    return render(request, "labeling/instructions_edit.html#preview", {"body": body})


def _version_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInput(f"'{name}' must be a version number.", field=name)
    return int(raw)


@require_GET
@login_required
def labeling_instructions_diff(request: HttpRequest, slug: str) -> HttpResponse:
    """?from=A&to=B (defaults: the newest version against the one before it). Unknown versions are 404."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    versions = list(instructions_versions(project))
    try:
        to_no = _version_param(request, "to")
        from_no = _version_param(request, "from")
    except InvalidInput as error:
        return render(request, "labeling/_notice.html", {"message": error.message, "level": "error"}, status=400)
    if to_no is None:
        to_no = versions[0].version if versions else 1
    if from_no is None:
        from_no = max(to_no - 1, 1)
    old = instructions_get_version(project=project, version=from_no)
    new = instructions_get_version(project=project, version=to_no)
    hunks = text_diff(old.body, new.body)
    return render(request, "labeling/instructions_diff.html", {
        "project": project, "versions": versions, "old": old, "new": new, "hunks": hunks,
    })


@require_POST
@login_required
def labeling_instructions_ack(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_labeler(slug=slug, user=request.user)
    instructions = instructions_current(project)
    version = _int_or_none(request.POST.get("version"), "version")
    if instructions is not None and version == instructions.version:
        services.instructions_acknowledge(instructions=instructions, user=request.user)
    url = reverse("labeling-compare", kwargs={"slug": project.slug})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
