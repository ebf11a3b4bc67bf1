"""The researcher's import page: upload a JSON Lines file of queries or comparisons, read the dry run
(the first rows as they will be stored, every bad line, whether this file came before, whose accounts
the labels go under), then import it: in the request, or as a task with a progress bar for a big file.
The file's bytes are kept between the two steps (services.imports.import_stash), so "Import" uploads
nothing again. Every rule is the services' (labeling/services/imports.py); this module asks and shows.
"""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from labeling.errors import LabelingError, PayloadTooLarge
from labeling.models import Import, Project
from labeling.selectors import project_get_for_researcher
from labeling.selectors.imports import import_accounts, import_get_for_project, imports_for_project
from labeling.services.imports import (
    DEFAULT_IMPORT_LABELER,
    ImportPreview,
    comparisons_import,
    import_count_records,
    import_dry_run,
    import_read,
    import_stash,
    import_stashed,
    import_start,
    import_unstash,
    queries_import,
    tokenizer_load,
)
from labeling.uploads import MULTIPART_ALLOWANCE, upload_too_large

LAYOUT_CHOICES = [
    ("auto", "detect from the first line"),
    ("2019", "2019: query, sample0…, best, labeler"),
    ("2020", "2020: info, summaries, choice, worker (K=2)"),
]


def import_async_lines() -> int:
    """Files of more records than this are imported by a task, with a progress bar."""
    return getattr(settings, "IMPORT_ASYNC_LINES", 2000)


class ImportForm(forms.Form):
    """The upload (dry run) and, carrying the same options, the import; the file is required for the dry run."""

    file = forms.FileField(required=False, label="File (.jsonl, .json, .ndjson)")
    kind = forms.ChoiceField(choices=Import.Kind.choices, initial=Import.Kind.COMPARISONS, label="The file holds")
    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, initial="auto", required=False, label="Layout (comparisons)")
    tokenizer = forms.CharField(required=False, max_length=1000, label="Tokenizer for token ids",
                                help_text='Leave empty for text; "bytes" for UTF-8 byte ids; or a tokenizer folder '
                                          "under ARTIFACTS_DIR.")
    pad_id = forms.IntegerField(required=False, min_value=0, label="Padding id stripped from token lists",
                                help_text="The 2019 files right-pad with 50259.")
    labeler = forms.CharField(required=False, max_length=150, initial=DEFAULT_IMPORT_LABELER,
                              label="Account for labels of lines without a labeler")
    batch = forms.CharField(required=False, max_length=100, label="Batch tag")
    calibration = forms.BooleanField(required=False, label="Calibration comparisons (researchers' answers)")
    # The import step: which stashed file, and the researcher's deliberate ticks.
    sha256 = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput)
    file_name = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)
    import_again = forms.BooleanField(required=False, label="This file was imported before: import it again anyway")

    def full_clean(self):
        super().full_clean()
        self._describe_errors()

    def add_error(self, field, error):
        super().add_error(field, error)
        self._describe_errors()

    def _describe_errors(self) -> None:
        """Screen readers read a field's error with the field, and the first field in error has the focus."""
        fields = [name for name in self.fields if name in (getattr(self, "_errors", None) or {})]
        for name in fields:
            self.fields[name].widget.attrs["aria-describedby"] = f"{self[name].auto_id}-error"
        if fields:
            self.fields[fields[0]].widget.attrs["autofocus"] = True

    def service_error(self, error: LabelingError) -> None:
        """A service's refusal shown next to the field it names (labelers_existing: above the accounts)."""
        field = error.field if error.field in self.fields else None
        if isinstance(error, PayloadTooLarge):
            field = "file"
        self.add_error(field, error.message)

    def options(self) -> dict:
        """What the services take, as plain values (a task's Import keeps them)."""
        data = self.cleaned_data
        return {"layout": data.get("layout") or "auto", "tokenizer": (data.get("tokenizer") or "").strip(),
                "pad_id": data.get("pad_id"), "labeler": (data.get("labeler") or "").strip() or DEFAULT_IMPORT_LABELER,
                "batch": data.get("batch") or "", "calibration": bool(data.get("calibration"))}


def _context(project: Project, form: ImportForm, **extra) -> dict:
    return {"project": project, "form": form, "imports": imports_for_project(project),
            "max_bytes": settings.IMPORT_MAX_BYTES, "async_lines": import_async_lines(), **extra}


def _page(request: HttpRequest, project: Project, form: ImportForm, *, status: int = 200, **extra) -> HttpResponse:
    return render(request, "labeling/import.html", _context(project, form, **extra), status=status)


def _dry_run(project: Project, form: ImportForm, data: bytes, name: str, listed: list[str]) -> ImportPreview:
    options = form.options()
    decoder = tokenizer_load(options["tokenizer"], allowed_root=settings.ARTIFACTS_DIR) if options["tokenizer"] else None
    return import_dry_run(project=project, source=data, kind=form.cleaned_data["kind"], name=name,
                          layout=options["layout"], tokenizer=decoder, pad_id=options["pad_id"],
                          labeler_username=options["labeler"], labelers_existing=listed)


def _too_large(request: HttpRequest) -> PayloadTooLarge | None:
    """The upload refused on its declared length, before the file is read or parsed."""
    limit = settings.IMPORT_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # the exact size is checked again on the file itself
    request.POST  # noqa: B018 -- the body is read here unless the CSRF check did: the handler marks a file past the cap
    if upload_too_large(request):  # stopped while the body was read (labeling/uploads.py)
        return PayloadTooLarge(f"The file is over {limit} bytes; imports are limited to {limit} bytes "
                               "(IMPORT_MAX_BYTES). Split it into smaller files.", field="file")
    if length > limit + MULTIPART_ALLOWANCE:  # multipart adds boundaries and the other fields around the file
        return PayloadTooLarge(f"The upload is {length} bytes; imports are limited to {limit} bytes "
                               "(IMPORT_MAX_BYTES). Split it into smaller files.", field="file")
    return None


@require_http_methods(["GET", "POST"])
@login_required
def labeling_import(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the upload form and this project's imports. POST: the dry run of the uploaded file (the
    default action), or, with action=import, the import of the file the dry run kept."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    if request.method == "GET":
        form = ImportForm(initial={"kind": Import.Kind.COMPARISONS, "layout": "auto", "labeler": DEFAULT_IMPORT_LABELER})
        form.fields["file"].widget.attrs["autofocus"] = True
        return _page(request, project, form)
    too_large = _too_large(request)
    if too_large is not None:
        form = ImportForm({"kind": Import.Kind.COMPARISONS, "layout": "auto", "labeler": DEFAULT_IMPORT_LABELER})
        form.is_valid()  # a blank form to carry the error: the upload's fields are not read
        form.add_error("file", too_large.message)
        return _page(request, project, form, status=too_large.status_code)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, project, form, status=400)
    if request.POST.get("action") == "import":
        return _import(request, project, form)
    return _check(request, project, form)


def _check(request: HttpRequest, project: Project, form: ImportForm) -> HttpResponse:
    """The dry run: everything read and checked, nothing written; a clean file is kept for the import."""
    upload = form.cleaned_data["file"]
    if upload is None:
        form.add_error("file", "Choose a file to check.")
        return _page(request, project, form, status=400)
    try:
        data = import_read(upload, name=upload.name)  # size (and type) before a byte is parsed
        preview = _dry_run(project, form, data, upload.name, listed=[])
    except LabelingError as error:
        form.service_error(error)
        return _page(request, project, form, status=error.status_code)
    if preview.ok:
        import_stash(project=project, data=data)
    form = ImportForm(initial={**form.options(), "kind": form.cleaned_data["kind"], "sha256": preview.sha256,
                               "file_name": upload.name})
    if not preview.ok:  # the next step is a corrected file (a clean one focuses its Import button)
        form.fields["file"].widget.attrs["autofocus"] = True
    return _page(request, project, form, preview=preview, file_name=upload.name)


def _import(request: HttpRequest, project: Project, form: ImportForm) -> HttpResponse:
    """Import the kept file: refused (with the dry run shown again) unless every existing account the
    file writes under is ticked and, for a file imported before, "import again anyway" is."""
    sha256, name = form.cleaned_data["sha256"], form.cleaned_data["file_name"]
    listed = request.POST.getlist("labelers_existing")
    options = {**form.options(), "labelers_existing": listed}
    kind = form.cleaned_data["kind"]
    try:
        data = import_stashed(project=project, sha256=sha256)
    except LabelingError as error:
        form.add_error("file", error.message)
        return _page(request, project, form, status=400)

    # 1. The researcher's ticks (the services enforce the accounts anyway; the repeat is this page's rule).
    try:
        preview = _dry_run(project, form, data, name, listed)
    except LabelingError as error:
        form.service_error(error)
        return _page(request, project, form, status=error.status_code)
    problem = None
    if not preview.ok:
        problem = "The file has bad lines; nothing was written."
    elif preview.previous_imports and not form.cleaned_data["import_again"]:
        problem = ("This exact file was imported into this project before. Tick “import it again anyway” to "
                   "import it a second time.")
    elif any(not account.listed for account in preview.accounts_existing):
        problem = ("The file writes labels under existing accounts. Tick each one to write under it "
                   "deliberately; the file cannot be imported otherwise.")
    if problem:
        form.add_error(None, problem)
        return _page(request, project, form, status=400, preview=preview, file_name=name)

    # 2. A big file goes to a task; a small one is written now, all or nothing.
    if import_count_records(data) > import_async_lines():
        record = import_start(project=project, sha256=sha256, kind=kind, name=name, options=options,
                              imported_by=request.user)
        return redirect("labeling-import-detail", slug=project.slug, import_id=record.id)
    decoder = tokenizer_load(options["tokenizer"], allowed_root=settings.ARTIFACTS_DIR) if options["tokenizer"] else None
    common = dict(project=project, source=data, name=name, tokenizer=decoder, pad_id=options["pad_id"],
                  imported_by=request.user, via=Import.Via.WEB)
    try:
        if kind == Import.Kind.QUERIES:
            result = queries_import(**common)
        else:
            result = comparisons_import(**common, layout=options["layout"], labeler_username=options["labeler"],
                                        batch=options["batch"], is_calibration=options["calibration"],
                                        labelers_existing=listed)
    except LabelingError as error:
        form.service_error(error)
        return _page(request, project, form, status=error.status_code, preview=preview, file_name=name)
    import_unstash(project=project, sha256=sha256)
    return redirect("labeling-import-detail", slug=project.slug, import_id=result.import_id)


def _record_context(record: Import) -> dict:
    return {"record": record, "accounts": import_accounts(record) if record.status == Import.Status.DONE else None}


@require_GET
@login_required
def labeling_import_detail(request: HttpRequest, slug: str, import_id: int) -> HttpResponse:
    """One import: its summary once done, its progress while a task runs it, its reason if it failed;
    the upload form below for the next file."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    record = import_get_for_project(project=project, import_id=import_id)
    form = ImportForm(initial={"kind": record.kind, "layout": "auto", "labeler": DEFAULT_IMPORT_LABELER})
    return _page(request, project, form, **_record_context(record))


@require_GET
@login_required
def labeling_import_status(request: HttpRequest, slug: str, import_id: int) -> HttpResponse:
    """The #import-status partial the page polls; 286 (stop polling) once the import has ended."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    record = import_get_for_project(project=project, import_id=import_id)
    response = render(request, "labeling/_import_status.html", {"project": project, **_record_context(record)})
    return response if record.is_active else HttpResponseStopPolling(response.content)
