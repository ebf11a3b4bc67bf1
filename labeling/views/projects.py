"""The researcher's new-project page: the project's settings and its first instructions (published as
version 1) in one form, created in one transaction; then on to importing data."""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods

from labeling import services
from labeling.errors import LabelingError
from labeling.label_types import LikertAxes
from labeling.models import Project
from labeling.roles import PERM_MANAGE, is_researcher
from labeling.services.instructions import MAX_BODY_CHARS

_SLUG_MAX = Project._meta.get_field("slug").max_length


class ProjectNewForm(forms.Form):
    """Types and ranges, for errors next to each field; labeling.services.projects checks again and
    has the last word (a taken or reserved slug, a bad instructions text)."""

    name = forms.CharField(max_length=Project._meta.get_field("name").max_length)
    slug = forms.SlugField(
        max_length=_SLUG_MAX, required=False,
        help_text="In the project's addresses: letters, digits, - and _. Left empty: made from the name.")
    task_kind = forms.ChoiceField(choices=Project.TaskKind.choices, initial=Project.TaskKind.CONTINUATION)
    k = forms.IntegerField(label="K (samples per comparison)", min_value=Project.K_MIN, max_value=Project.K_MAX,
                           initial=4, help_text="Labelers pick the best of K samples.")
    label_type = forms.ChoiceField(
        choices=Project.LabelType.choices, initial=Project.LabelType.BEST_OF_K, required=False,
        help_text="Best of K; (K = 2) a 9-point scale of which is better and how sure (2020); or a ranking of all "
                  "K samples with ties (InstructGPT), trained on every ordered pair.")
    likert_axes = forms.CharField(
        label="Likert axes", required=False, max_length=400,
        help_text="Optional: after the choice, each sample is rated 1–7 on these axes, separated by commas or spaces "
                  "(2020: overall, accuracy, coverage, coherence). Empty: no ratings.")
    allow_none_acceptable = forms.BooleanField(
        label='Allow "none acceptable"', required=False,
        help_text="Labelers may answer that every sample is bad (key N); they still mark the least bad.")

    def clean_label_type(self) -> str:
        return self.cleaned_data.get("label_type") or Project.LabelType.BEST_OF_K

    def clean_likert_axes(self) -> list[str]:
        axes = [axis for axis in self.cleaned_data.get("likert_axes", "").replace(",", " ").split() if axis]
        problem = LikertAxes.axes_errors(axes)
        if problem:
            raise forms.ValidationError(problem)
        return axes
    labels_per_comparison = forms.IntegerField(min_value=1, initial=1,
                                               help_text="Labels wanted on each ordinary comparison.")
    calibration_share = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.15,
                                         help_text="Share of a labeler's items drawn from the calibration slice (0–1).")
    calibration_labels_wanted = forms.IntegerField(
        min_value=1, max_value=1000, initial=10,
        help_text="Labels wanted on each calibration comparison, researchers' and labelers' together.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    instructions = forms.CharField(
        label="Instructions (version 1)", max_length=MAX_BODY_CHARS, strip=False,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="Markdown, shown to labelers before their first label. Ctrl+Enter creates the project.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autofocus"] = True

    def clean(self):
        data = super().clean()
        if not data.get("slug") and data.get("name") and "slug" not in self.errors:
            data["slug"] = slugify(data["name"])[:_SLUG_MAX].strip("-_")
            if not data["slug"]:
                self.add_error("slug", "The name makes no slug: type one (letters, digits, - and _).")
        return data

    def focus_first_error(self) -> None:
        """Keyboard-first: a page shown again with errors puts the cursor in the first wrong field."""
        wrong = [name for name in self.fields if name in self.errors]
        if wrong:
            self.fields["name"].widget.attrs.pop("autofocus", None)
            self.fields[wrong[0]].widget.attrs["autofocus"] = True


def _may_create_projects(user) -> bool:
    # The API's create endpoint asks for the same permission (labeling.permissions.CanManageProjects).
    return is_researcher(user) and user.has_perm(PERM_MANAGE)


def _after_create_url(project: Project) -> str:
    """The project's import page, where a new project gets its data; the rounds page where that page
    is not installed."""
    try:
        return reverse("labeling-import", kwargs={"slug": project.slug})
    except NoReverseMatch:
        return reverse("training-project-runs", kwargs={"slug": project.slug})


@require_http_methods(["GET", "POST"])
@login_required
def labeling_project_new(request: HttpRequest) -> HttpResponse:
    """GET: the empty form. POST: create the project with instructions v1 and go to its import page;
    bad input is the form again (400) with each error next to its field, and nothing written."""
    if not _may_create_projects(request.user):
        raise PermissionDenied("Only researchers and admins may create projects.")
    if request.method == "GET":
        return render(request, "labeling/project_new.html", {"form": ProjectNewForm()})
    form = ProjectNewForm(request.POST)
    if form.is_valid():
        try:
            project, _ = services.project_create_with_instructions(**form.cleaned_data, created_by=request.user)
        except LabelingError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            return redirect(_after_create_url(project))
    form.focus_first_error()
    return render(request, "labeling/project_new.html", {"form": form}, status=400)
