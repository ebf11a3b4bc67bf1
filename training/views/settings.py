"""A project's training settings (researchers): the form generated from the library's configs (with the
papers' presets), and the same settings as one JSON document. Both save through
services.training_settings_save, which refuses the whole on any error (each shown beside its field)."""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.errors import LabelingError
from labeling.selectors import project_get_for_researcher
from training.forms import TrainingSettingsForm, fields_by_key
from training.rlhf.presets import PRESETS
from training.services.settings import MAX_SETTINGS_CHARS, SettingsInvalid, training_settings_save


def _preset_merged(settings: dict, preset_key: str) -> dict:
    """The settings with a preset's fields over them, section by section (nothing saved)."""
    merged = json.loads(json.dumps(settings or {}))
    for section, values in PRESETS[preset_key].settings().items():
        merged[section] = {**(merged.get(section) if isinstance(merged.get(section), dict) else {}), **values}
    return merged


def _page(request: HttpRequest, project, form: TrainingSettingsForm, *, status: int = 200,
          saved: bool = False) -> HttpResponse:
    preset = PRESETS.get(form["applied_preset"].value() or "")
    sources = preset.sources() if preset else {}
    shown = fields_by_key()
    form.focus_first()
    return render(request, "training/settings.html", {
        "project": project, "form": form, "sections": form.sections(sources), "presets": PRESETS.values(),
        "preset": preset,
        # Preset fields the form has no input for: they are in the JSON box, their sources listed beside it.
        "other_sources": {key: note for key, note in sources.items() if key not in shown},
        "saved": saved,
    }, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def training_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the form holding the project's settings. POST action=save: save them all or nothing (400 with
    every error beside its field); POST action=preset: the same form with a preset's values, not saved."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    if request.method == "GET":
        return _page(request, project, TrainingSettingsForm.for_settings(project.training_settings or {}),
                     saved=request.GET.get("saved") == "1")
    form = TrainingSettingsForm(request.POST)
    if request.POST.get("action") == "preset":
        key = request.POST.get("preset", "")
        if key not in PRESETS:
            form.is_valid()
            form.add_error(None, "Choose one of the presets.")
            return _page(request, project, form, status=400)
        base = form.settings() if form.is_valid() else project.training_settings or {}
        return _page(request, project, TrainingSettingsForm.for_settings(_preset_merged(base, key), preset=key))
    if not form.is_valid():
        return _page(request, project, form, status=400)
    try:
        training_settings_save(project=project, settings=form.settings(), user=request.user)
    except SettingsInvalid as error:
        form.show_errors(error.errors)
        return _page(request, project, form, status=error.status_code)
    except LabelingError as error:
        form.add_error(None, error.message)
        return _page(request, project, form, status=error.status_code)
    return redirect(f"{request.path}?saved=1")


@require_http_methods(["GET", "POST"])
@login_required
def training_settings_json(request: HttpRequest, slug: str) -> HttpResponse:
    """The whole training_settings as JSON: saved as written when valid, else every error by "section.field"."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    context = {"project": project, "errors": {}, "saved": request.GET.get("saved") == "1"}
    if request.method == "GET":
        text = json.dumps(project.training_settings or {}, indent=2)
        return render(request, "training/settings_json.html", {**context, "text": text})
    text = request.POST.get("settings", "")
    context["text"] = text
    if len(text) > MAX_SETTINGS_CHARS:
        context["errors"] = {"": [f"The settings are limited to {MAX_SETTINGS_CHARS} characters."]}
        return render(request, "training/settings_json.html", context, status=400)
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        context["errors"] = {"": [f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."]}
        return render(request, "training/settings_json.html", context, status=400)
    try:
        training_settings_save(project=project, settings=settings, user=request.user)
    except SettingsInvalid as error:
        context["errors"] = error.errors
        return render(request, "training/settings_json.html", context, status=error.status_code)
    except LabelingError as error:
        context["errors"] = {"": [error.message]}
        return render(request, "training/settings_json.html", context, status=error.status_code)
    return redirect(f"{request.path}?saved=1")
