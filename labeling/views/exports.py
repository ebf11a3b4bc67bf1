"""The researcher's export page: a GET form (so a filtered export is a URL to share) with the layout,
the filters of labeling/selectors/exports.py and a count of the labels that match, kept current by htmx
as fields change; and the download, which streams the same export as a JSON Lines file.

Both read the same query parameters as the API's `LabelsExportApi`; a bad one is a field error on the
page (status 400), never a half-written file.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from labeling.errors import InvalidInput
from labeling.models import Project, Query
from labeling.selectors import project_get_for_researcher
from labeling.selectors.exports import (
    labels_export_count,
    labels_export_filters_check,
    labels_export_jsonl,
    labels_export_layout_check,
    labels_export_versions,
)

FILTERS = ("split", "created_from", "created_to", "instructions_version", "labeler_kind", "calibration")
LAYOUT_CHOICES = [
    ("2019", "2019: query, sample0…sample{K−1}, best"),
    ("2020", "2020: TL;DR pairs (K=2 only)"),
    ("pairs", "pairs: prompt, chosen, rejected (K−1 a label; a ranking: each ordered pair)"),
    ("2020-axes", "2020 axis evals: each sample's Likert ratings (projects with axes)"),
]
LABELER_KIND_CHOICES = [
    ("", "everyone"),
    ("people", "people (labeled here)"),
    ("simulated", "simulated labelers"),
    ("imported", "imported"),
]
CALIBRATION_CHOICES = [
    ("include", "included"),
    ("exclude", "left out"),
    ("only", "only calibration"),
]


class ExportForm(forms.Form):
    """Every field may be missing from a URL: a missing one means "no filter" (layout: 2019)."""

    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, required=False)
    split = forms.ChoiceField(choices=[("", "all splits"), *Query.Split.choices], required=False)
    created_from = forms.DateField(required=False, label="Labeled from",
                                   widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    created_to = forms.DateField(required=False, label="to (inclusive)",
                                 widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    instructions_version = forms.TypedChoiceField(coerce=int, empty_value=None, required=False,
                                                  label="Instructions version")
    labeler_kind = forms.ChoiceField(choices=LABELER_KIND_CHOICES, required=False, label="Labeled by")
    calibration = forms.ChoiceField(choices=CALIBRATION_CHOICES, required=False, label="Calibration comparisons")

    def __init__(self, data, *, project: Project):
        super().__init__(data)
        self.project = project
        self.fields["instructions_version"].choices = [
            ("", "any version"), *((str(v), f"v{v}") for v in labels_export_versions(project=project))]

    def clean_layout(self) -> str:
        layout = self.cleaned_data["layout"] or "2019"
        try:
            labels_export_layout_check(project=self.project, layout=layout)
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from error
        return layout

    def clean_calibration(self) -> str:
        return self.cleaned_data["calibration"] or "include"

    def clean(self):
        cleaned = super().clean()
        if not any(name in self.errors for name in FILTERS):  # the selector's checks assume each filter parsed
            try:
                labels_export_filters_check(project=self.project, **self.filters())
            except InvalidInput as error:
                self.add_error(error.field if error.field in self.fields else None, error.message)
        return cleaned

    def full_clean(self):
        super().full_clean()
        for name in self.errors:  # screen readers read a field's error with the field
            if name in self.fields:
                self.fields[name].widget.attrs["aria-describedby"] = f"{self[name].auto_id}-error"

    def focus_first(self) -> None:
        """Autofocus the first field with an error, else the layout (full pages; htmx updates hold no fields)."""
        name = next((name for name in self.fields if name in self.errors), "layout")
        self.fields[name].widget.attrs["autofocus"] = True

    def filters(self) -> dict:
        """The selector's keyword arguments (only the filters that are set)."""
        return {name: self.cleaned_data[name] for name in FILTERS if self.cleaned_data.get(name) not in (None, "")}


def _form(request: HttpRequest, project: Project) -> ExportForm:
    # Always bound: a URL without parameters is a valid export of everything, counted at once.
    return ExportForm({name: request.GET.get(name, "") for name in ("layout", *FILTERS)}, project=project)


def _query(form: ExportForm) -> str:
    """The form's settings as a query string, without empty fields (for the shareable links)."""
    return urlencode({name: form.data[name] for name in ("layout", *FILTERS) if form.data.get(name)})


def _context(project: Project, form: ExportForm) -> dict:
    """What the page and its partial show: the count (None while a field is wrong) and the links' query."""
    context = {"project": project, "form": form, "query": _query(form), "count": None}
    if form.is_valid():
        count = labels_export_count(project=project, **form.filters())
        layout = form.cleaned_data["layout"]
        # Pairs of a ranking: at most K·(K−1)/2 a label (ties make none); axes: a line per sample.
        per_label = {"pairs": project.k * (project.k - 1) // 2 if project.label_type == Project.LabelType.RANKING
                     else project.k - 1, "2020-axes": project.k}.get(layout, 1)
        lines = count * per_label
        context.update(count=count, lines=lines,
                       count_text=f"{count:,} label{'' if count == 1 else 's'} match{'es' if count == 1 else ''}",
                       lines_text=f"{'up to ' if layout == 'pairs' and project.label_type == Project.LabelType.RANKING else ''}"
                                  f"{lines:,} line{'' if lines == 1 else 's'}")
    return context


@require_GET
@login_required
def labeling_export(request: HttpRequest, slug: str) -> HttpResponse:
    """The page, or (htmx, as a field changes) #export-update: the count and every field's error slot."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    form = _form(request, project)
    context = _context(project, form)
    partial = request.htmx and not request.htmx.history_restore_request
    if not partial:
        form.focus_first()
    response = render(request, "labeling/export.html#export-update" if partial else "labeling/export.html", context,
                      status=200 if form.is_valid() else 400)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
@login_required
def labeling_export_download(request: HttpRequest, slug: str) -> HttpResponse:
    """The export as a JSON Lines attachment, streamed; bad filters give the page with field errors (400)."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    form = _form(request, project)
    if not form.is_valid():
        form.focus_first()
        return render(request, "labeling/export.html", _context(project, form), status=400)
    layout = form.cleaned_data["layout"]
    lines = labels_export_jsonl(project=project, layout=layout, **form.filters())
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    name = f"{project.slug}-labels-{layout}-{timezone.localdate().isoformat()}.jsonl"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
