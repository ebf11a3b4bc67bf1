"""API: imports (queries, comparisons with labels; JSON Lines, all or nothing) and the label export."""
from __future__ import annotations

import json

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from labeling import services
from labeling.api.base import Api, ServiceError, errors, service_errors
from labeling.errors import InvalidInput, PayloadTooLarge
from labeling.models import Import, Query
from labeling.permissions import CanManageProjects
from labeling.selectors import (
    project_get_for_researcher,
)
from labeling.selectors.exports import CALIBRATION_CHOICES, EXPORT_LAYOUTS, LABELER_KINDS, labels_export_jsonl
from labeling.services.imports import DEFAULT_IMPORT_LABELER, LAYOUTS
from labeling.uploads import MULTIPART_ALLOWANCE, upload_too_large

RAW_IMPORT_TYPES = ("application/x-ndjson", "application/jsonl", "application/json")


class ImportOutputSerializer(serializers.Serializer):
    lines = serializers.IntegerField()
    queries_created = serializers.IntegerField()
    samples_created = serializers.IntegerField()
    comparisons_created = serializers.IntegerField()
    labels_created = serializers.IntegerField()
    labelers_created = serializers.IntegerField()
    import_id = serializers.IntegerField(help_text="The Import that records this file; its rows point at it.")
    sha256 = serializers.CharField(help_text="Of the file's bytes.")
    previously_imported = serializers.BooleanField(
        help_text="The same content was imported into this project before (not refused: see previous_import_ids).")
    previous_import_ids = serializers.ListField(child=serializers.IntegerField())
    accounts_created = serializers.ListField(
        child=serializers.CharField(), help_text="Accounts created for the file's labelers (contractors, no login).")
    accounts_reused = serializers.ListField(
        child=serializers.CharField(), help_text="Accounts created by earlier imports of this project, written under.")
    accounts_existing = serializers.ListField(
        child=serializers.CharField(),
        help_text="Existing accounts written under because labelers_existing listed them.")


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A .jsonl/.json file.")


_LABELERS_EXISTING_HELP = (
    "Existing accounts the file may write labels under (usernames; repeat the parameter or separate with commas). "
    "A file naming an account that exists, other than one created by an earlier import of this project, is "
    "refused with 400 (code existing_accounts, field labelers_existing) naming each account and its lines, and "
    "nothing is written. A listed name with no account is a 400; one the file does not use is not.")


class ComparisonsImportUploadSerializer(ImportUploadSerializer):
    labelers_existing = serializers.ListField(child=serializers.CharField(max_length=150), required=False,
                                              help_text=_LABELERS_EXISTING_HELP)


def _import_source(request) -> tuple[object, str | None]:
    """The uploaded file (multipart field `file`) or the raw body; the size is checked before reading."""
    limit = settings.IMPORT_MAX_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0  # Django treats a malformed length as none; the exact size is still checked later
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    allowance = MULTIPART_ALLOWANCE if content_type == "multipart/form-data" else 0
    if length > limit + allowance:
        raise ServiceError(PayloadTooLarge(
            f"The upload is {length} bytes; imports are limited to {limit} bytes (IMPORT_MAX_BYTES). "
            "Split it into smaller files."))
    if content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None and upload_too_large(request):  # stopped at the cap while the body was read
            raise ServiceError(PayloadTooLarge(f"The file is over {limit} bytes; imports are limited to {limit} "
                                               "bytes (IMPORT_MAX_BYTES). Split it into smaller files."))
        if upload is None:
            raise ServiceError(InvalidInput("Upload the file in a form field named 'file'.", field="file"))
        return upload, upload.name
    if content_type in RAW_IMPORT_TYPES:
        return request.body, None
    raise UnsupportedMediaType(content_type or "(none)")


_IMPORT_REQUEST = {
    "multipart/form-data": ImportUploadSerializer,
    "application/x-ndjson": OpenApiTypes.BINARY,
    "application/json": OpenApiTypes.BINARY,
}
_COMPARISONS_IMPORT_REQUEST = {**_IMPORT_REQUEST, "multipart/form-data": ComparisonsImportUploadSerializer}


def _names(values: list[str]) -> list[str]:
    """Usernames from repeated values and comma-separated lists (a username cannot hold a comma)."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


class QueriesImportApi(Api):
    """Import queries and their samples from JSON Lines, all or nothing.

    One object per line: `{"context": str, "reference"?: str, "external_id"?: str,
    "split"?: "train"|"valid"|"test", "samples"?: [{"text": str, "source"?: str,
    "generation_params"?: object}]}`. Send the file as multipart field `file` or as the raw
    body (`application/x-ndjson`). Errors name the line; over IMPORT_MAX_BYTES answers 413.
    """

    permission_classes = [CanManageProjects]
    parser_classes = [MultiPartParser]

    @extend_schema(request=_IMPORT_REQUEST, responses={201: ImportOutputSerializer, **errors(400, 401, 403, 404, 413, 415)})
    def post(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        source, name = _import_source(request)
        with service_errors():
            result = services.queries_import(project=project, source=source, name=name, imported_by=request.user,
                                             via=Import.Via.API)
        return Response(ImportOutputSerializer(result).data, status=status.HTTP_201_CREATED)


class ComparisonsImportApi(Api):
    """Import comparisons (with labels where the file has them), all or nothing.

    2019 layout, one question per line: `{"query", "sample0".."sample{K-1}", "best"?}`, texts as
    strings or token ids (`tokenizer=bytes`, or a tokenizer folder under ARTIFACTS_DIR). 2020
    layout (K=2): `{"info": {"id", "post"}, "summaries": [{"text", "policy"} ×2], "choice",
    "worker", "split"}`. The file's K must match the project's. Labels belong to the line's
    `labeler`/`worker` account, else to `labeler` (default "imported"); missing accounts are
    created as contractors that cannot log in. An account that exists is written under only if an
    earlier import of this project created it or `labelers_existing` lists it; otherwise 400
    (code `existing_accounts`) names each one with its lines and nothing is written. Options are
    query parameters (`labelers_existing` may also be multipart fields); the file is the multipart
    field `file` or the raw body. The answer names the accounts created and written under, and
    `previously_imported` when the same content was imported into the project before.
    """

    permission_classes = [CanManageProjects]
    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="ComparisonsImportParams")
    class ParamsSerializer(serializers.Serializer):
        layout = serializers.ChoiceField(choices=LAYOUTS, default="auto")
        tokenizer = serializers.CharField(required=False, allow_blank=True, default="", help_text='"bytes" or a tokenizer folder under ARTIFACTS_DIR.')
        pad_id = serializers.IntegerField(required=False, min_value=0, allow_null=True, default=None,
                                          help_text="Token id stripped from the end of token lists (2019: 50259).")
        labeler = serializers.CharField(required=False, default=DEFAULT_IMPORT_LABELER, max_length=150)
        batch = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
        calibration = serializers.BooleanField(required=False, default=False)
        labelers_existing = serializers.ListField(child=serializers.CharField(max_length=1000), required=False,
                                                  default=list, help_text=_LABELERS_EXISTING_HELP)

    @extend_schema(parameters=[ParamsSerializer], request=_COMPARISONS_IMPORT_REQUEST,
                   responses={201: ImportOutputSerializer, **errors(400, 401, 403, 404, 413, 415)})
    def post(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        params = self.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        options = params.validated_data
        source, name = _import_source(request)
        listed = list(options["labelers_existing"])
        if (request.content_type or "").lower().startswith("multipart/form-data"):  # form fields may list them too
            listed += request.data.getlist("labelers_existing")
        with service_errors():
            decoder = (services.tokenizer_load(options["tokenizer"], allowed_root=settings.ARTIFACTS_DIR)
                       if options["tokenizer"] else None)
            result = services.comparisons_import(
                project=project, source=source, name=name, layout=options["layout"], tokenizer=decoder,
                pad_id=options["pad_id"], labeler_username=options["labeler"], batch=options["batch"],
                is_calibration=options["calibration"], labelers_existing=_names(listed), imported_by=request.user,
                via=Import.Via.API,
            )
        return Response(ImportOutputSerializer(result).data, status=status.HTTP_201_CREATED)


class JSONLinesRenderer(BaseRenderer):
    """Lets clients ask for `Accept: application/x-ndjson`; error bodies are one JSON line."""

    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return (json.dumps(data, ensure_ascii=False) + "\n").encode()


class LabelsExportApi(Api):
    """Stream the project's answered labels as JSON Lines (researchers and admins).

    layout "2019": `{"query", "sample0".."sample{K-1}", "best", …}` per label; "2020" (K=2 only):
    `{"info", "summaries", "choice", "worker", "split", …}` per label; "pairs": `{"prompt",
    "chosen", "rejected"}`, K−1 per label (a ranking: each strictly ordered pair); "2020-axes" (projects with
    Likert axes): `{"info", "summary": {"text", "policy", "axes"}, "worker", …}` per sample of a label. The 2019
    layout carries `ranks`, `likert` and `none_acceptable` where the project asks for them. Skipped labels are left out. Filters, all optional and
    combined with AND: `split`; `created_from` / `created_to`, dates (YYYY-MM-DD, both inclusive) of
    the label's creation in the site's time zone; `instructions_version`, the version the label was
    given under; `labeler_kind`: `people` (labeled here by a person), `simulated` (labeled here by a
    simulated labeler account) or `imported` (written by an import); `calibration`: `include`
    (default), `exclude` or `only` calibration comparisons. A bad filter is a 400 naming its field:
    a range that ends before it starts, a version the project never had, the 2020 layout for K≠2.
    The researcher's export page (`/projects/<slug>/export/`) takes the same parameters.
    """

    permission_classes = [CanManageProjects]
    renderer_classes = [JSONRenderer, JSONLinesRenderer]

    @extend_schema_serializer(component_name="LabelsExportParams")
    class ParamsSerializer(serializers.Serializer):
        layout = serializers.ChoiceField(choices=EXPORT_LAYOUTS, default="2019",
                                         help_text='"2020" only for K=2 projects.')
        split = serializers.ChoiceField(choices=Query.Split.choices, required=False,
                                        help_text="The split of the label's query.")
        created_from = serializers.DateField(required=False, help_text=(
            "Labels created on or after this date (site's time zone)."))
        created_to = serializers.DateField(required=False, help_text=(
            "Labels created on or before this date (site's time zone, inclusive)."))
        instructions_version = serializers.IntegerField(required=False, min_value=1, help_text=(
            "Labels given under this instructions version of the project."))
        labeler_kind = serializers.ChoiceField(choices=LABELER_KINDS, required=False, help_text=(
            "people: labeled here by a person; simulated: by a simulated labeler account; imported: written by "
            "an import."))
        calibration = serializers.ChoiceField(choices=CALIBRATION_CHOICES, default="include", help_text=(
            "Include, exclude, or export only the calibration comparisons' labels."))

    @extend_schema(parameters=[ParamsSerializer],
                   responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="JSON Lines."),
                              **errors(400, 401, 403, 404)})
    def get(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        params = self.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters = dict(params.validated_data)
        layout = filters.pop("layout")
        with service_errors():
            lines = labels_export_jsonl(project=project, layout=layout, **filters)
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-labels-{layout}.jsonl"'
        return response
