"""DRF interface of the labeling app: thin views that parse, check permission, call one service."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import services
from labeling.auth_backends import TokenAuthenticationWithPermissions
from labeling.errors import InvalidInput, LabelingError, NotFound, PayloadTooLarge
from labeling.models import Instructions, Project, Query
from labeling.permissions import CanLabel, CanManageProjects, IsResearcher
from labeling.roles import PERM_RESEARCH
from labeling.selectors import (
    assignment_for_display,
    project_get_for_labeler,
    project_get_for_researcher,
    project_progress,
    projects_for_user,
)
from labeling.selectors_export import EXPORT_LAYOUTS, labels_export_jsonl
from labeling.selectors_instructions import instructions_versions
from labeling.services.imports import DEFAULT_IMPORT_LABELER, LAYOUTS


class ServiceError(APIException):
    """Carries a LabelingError's status and message to the client."""

    def __init__(self, error: LabelingError):
        self.status_code = error.status_code
        detail = {"detail": error.message, "code": error.code}
        if error.field:
            detail["field"] = error.field
        super().__init__(detail=detail, code=error.code)


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn a service's LabelingError into its HTTP answer."""
    try:
        yield
    except LabelingError as error:
        raise ServiceError(error) from error


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    field = serializers.CharField(required=False, help_text="The input field at fault, when there is one.")


_ERROR_TEXT = {
    401: "Not authenticated (send `Authorization: Token <key>`).",
    403: "Your role may not do this, or the object is another labeler's.",
    404: "No such object, or not one you may see.",
    409: "Conflicts with the stored state (already answered differently, expired, withdrawn, instructions unread).",
    413: "The upload is larger than IMPORT_MAX_BYTES.",
    415: "Send JSON Lines (multipart field `file`, or an application/x-ndjson body).",
}


def errors(*codes: int) -> dict:
    """Schema entries for the error answers an endpoint gives (400 bodies vary: service or field errors)."""
    out: dict = {code: OpenApiResponse(ErrorOutputSerializer, description=_ERROR_TEXT[code]) for code in codes if code != 400}
    if 400 in codes:
        out[400] = OpenApiResponse(OpenApiTypes.OBJECT, description=(
            "Invalid input: `{detail, code, field}` from a service check, or `{field: [messages]}` from validation."))
    return out


class Api(APIView):
    """Base of the labeling API: token first, so an anonymous client gets 401 with `WWW-Authenticate: Token`.

    The token's query also reads the user's permissions (PostgreSQL): see auth_backends.
    """

    authentication_classes = [TokenAuthenticationWithPermissions, SessionAuthentication]


class SampleShownSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="Display position, 0 = A.")
    letter = serializers.CharField()
    text = serializers.CharField(source="sample.text")


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="assignment.id")
    comparison_id = serializers.IntegerField(source="assignment.comparison_id")
    expires_at = serializers.DateTimeField(source="assignment.expires_at")
    context = serializers.CharField()
    samples = SampleShownSerializer(many=True)


_DATETIME = serializers.DateTimeField()  # DRF's rendering of a datetime, for the hot endpoints' plain dicts


class HotPathApi(Api):
    """Base of the two endpoints every label goes through (next, submit): the answer is always JSON."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # JSON is the one renderer: what DRF's negotiation picks for these Accept headers, without
        # parsing them on every label; any other header gets DRF's answer (a 406 where JSON is refused).
        if request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", "application/json"):
            renderer = JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)


class AssignmentNextApi(HotPathApi):
    """Lease the next comparison in a project for the calling labeler (204 when none is left)."""

    permission_classes = [CanLabel]

    @extend_schema(request=None, responses={200: AssignmentOutputSerializer, 204: None, **errors(401, 403, 404)})
    def post(self, request, project_slug: str):
        with service_errors():
            assignment = services.comparison_next_by_slug(slug=project_slug, labeler=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # AssignmentOutputSerializer's fields, built directly (a serializer costs more than the lease's SQL).
        shown = assignment_for_display(assignment)
        return Response({
            "id": assignment.id,
            "comparison_id": assignment.comparison_id,
            "expires_at": _DATETIME.to_representation(assignment.expires_at),
            "context": shown.context,
            "samples": [{"position": s.position, "letter": s.letter, "text": s.sample.text} for s in shown.samples],
        })


_PLAIN_KEYS = frozenset({"position", "duration_ms", "unsure", "skipped", "skip_reason", "flags"})
_MAX_DURATION_MS = 24 * 3600 * 1000


def plain_answer(data) -> services.LabelInput | None:
    """The common answer without the serializer: a JSON object of a choice (an int, or null with
    `skipped`), an int duration in range, booleans, no skip reason and no flags. Anything else is
    None and goes through LabelCreateApi.InputSerializer; for what this accepts the serializer
    gives the same LabelInput (tests/labeling/test_api_fuzz.py holds the two to that)."""
    if type(data) is not dict or not data.keys() <= _PLAIN_KEYS:
        return None
    position, duration = data.get("position"), data.get("duration_ms")
    unsure, skipped = data.get("unsure", False), data.get("skipped", False)
    if (position is None or type(position) is int) and type(duration) is int and 0 <= duration <= _MAX_DURATION_MS \
            and type(unsure) is bool and type(skipped) is bool \
            and data.get("skip_reason", "") == "" and data.get("flags", []) == []:
        return services.LabelInput(position=position, duration_ms=duration, unsure=unsure, skipped=skipped)
    return None


class LabelCreateApi(HotPathApi):
    """Answer a leased assignment. Idempotent: a replay returns the stored label with 200."""

    permission_classes = [CanLabel]

    @extend_schema_serializer(component_name="LabelCreateFlag")
    class FlagSerializer(serializers.Serializer):
        position = serializers.IntegerField(min_value=0, max_value=7)
        note = serializers.CharField(max_length=2000)
        suggested_correction = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")

    @extend_schema_serializer(component_name="LabelCreateInput")
    class InputSerializer(serializers.Serializer):
        position = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="Display position chosen, 0 = A; omit when skipping."
        )
        duration_ms = serializers.IntegerField(min_value=0, max_value=_MAX_DURATION_MS)
        unsure = serializers.BooleanField(default=False)
        skipped = serializers.BooleanField(default=False)
        skip_reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
        flags = serializers.ListField(child=serializers.DictField(), required=False, default=list, max_length=8)

        def validate_position(self, value):
            # Reject "2" and 2.0: IntegerField coerces strings, and a choice must be unambiguous.
            raw = self.initial_data.get("position")
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
                raise serializers.ValidationError("Must be a JSON integer.")
            return value

        def validate_flags(self, value):
            flags = []
            for item in value:
                s = LabelCreateApi.FlagSerializer(data=item)
                s.is_valid(raise_exception=True)
                flags.append(services.FlagInput(**s.validated_data))
            return flags

    @extend_schema_serializer(component_name="LabelCreateOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment_id = serializers.IntegerField()
        chosen_index = serializers.IntegerField(allow_null=True, help_text="Canonical index of the chosen sample.")
        skipped = serializers.BooleanField()
        unsure = serializers.BooleanField()
        duration_ms = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer, **errors(400, 401, 403, 404, 409)})
    def post(self, request, assignment_id: int):
        answer = plain_answer(request.data)
        if answer is None:
            data = self.InputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            answer = services.LabelInput(**data.validated_data)
        with service_errors():
            label, created = services.label_submit(assignment_id=assignment_id, labeler=request.user, answer=answer)
        # OutputSerializer's fields, built directly.
        data = {
            "id": label.id,
            "assignment_id": label.assignment_id,
            "chosen_index": label.chosen_index,
            "skipped": label.skipped,
            "unsure": label.unsure,
            "duration_ms": label.duration_ms,
            "created_at": _DATETIME.to_representation(label.created_at),
        }
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# ---------------------------------------------------------------- projects


class ProjectOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "task_kind", "k", "labels_per_comparison", "calibration_share",
                  "calibration_labels_wanted", "is_active", "created_at"]
        read_only_fields = fields


class ProjectListApi(Api):
    """Projects the caller may see: active projects for labelers, every project for researchers."""

    permission_classes = [CanLabel]

    @extend_schema(responses={200: ProjectOutputSerializer(many=True), **errors(401, 403)})
    def get(self, request):
        projects = Project.objects.order_by("name") if request.user.has_perm(PERM_RESEARCH) else projects_for_user(request.user)
        return Response(ProjectOutputSerializer(projects, many=True).data)


K_MESSAGE = f"K must be a JSON integer from {Project.K_MIN} to {Project.K_MAX}."


class ProjectCreateApi(Api):
    """Create a project (researchers and admins). K must be an integer from 2 to 8."""

    permission_classes = [CanManageProjects]

    @extend_schema_serializer(component_name="ProjectCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=80)
        k = serializers.IntegerField(default=4, help_text="Samples per comparison, 2–8.",
                                     error_messages={"invalid": K_MESSAGE, "null": K_MESSAGE})
        task_kind = serializers.ChoiceField(choices=Project.TaskKind.choices, default=Project.TaskKind.CONTINUATION)
        labels_per_comparison = serializers.IntegerField(default=1)
        calibration_share = serializers.FloatField(default=0.15)
        calibration_labels_wanted = serializers.IntegerField(
            default=10, help_text="Labels wanted on each calibration comparison (researchers' and labelers'), 1–1000.")
        description = serializers.CharField(required=False, allow_blank=True, default="")

        def validate_k(self, value):
            # The service checks the range; reject "4" and 4.0 here, as the label API does for choices.
            if "k" not in self.initial_data:
                return value  # omitted: the default
            raw = self.initial_data.get("k")
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise serializers.ValidationError(K_MESSAGE)
            return value

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer, **errors(400, 401, 403)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors():
            project = services.project_create(**data.validated_data, created_by=request.user)
        return Response(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


def _project_for(request, slug: str) -> Project:
    """Researchers see any project, labelers active ones; anything else is 404 (no existence leak)."""
    if request.user.has_perm(PERM_RESEARCH):
        return project_get_for_researcher(slug=slug, user=request.user)
    return project_get_for_labeler(slug=slug, user=request.user)


class ProjectDetailApi(Api):
    permission_classes = [CanLabel]

    @extend_schema(responses={200: ProjectOutputSerializer, **errors(401, 403, 404)})
    def get(self, request, project_slug: str):
        return Response(ProjectOutputSerializer(_project_for(request, project_slug)).data)


class ProjectProgressApi(Api):
    """Comparisons (active), labels wanted and labels so far (researchers)."""

    permission_classes = [IsResearcher]

    @extend_schema_serializer(component_name="ProjectProgressOutput")
    class OutputSerializer(serializers.Serializer):
        comparisons = serializers.IntegerField()
        wanted = serializers.IntegerField()
        labeled = serializers.IntegerField()

    @extend_schema(responses={200: OutputSerializer, **errors(401, 403, 404)})
    def get(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        return Response(self.OutputSerializer(project_progress(project)).data)


# ---------------------------------------------------------------- imports

RAW_IMPORT_TYPES = ("application/x-ndjson", "application/jsonl", "application/json")
# Multipart adds boundaries and headers around the file; the exact file size is checked after.
MULTIPART_ALLOWANCE = 64 * 1024


class ImportOutputSerializer(serializers.Serializer):
    lines = serializers.IntegerField()
    queries_created = serializers.IntegerField()
    samples_created = serializers.IntegerField()
    comparisons_created = serializers.IntegerField()
    labels_created = serializers.IntegerField()
    labelers_created = serializers.IntegerField()


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A .jsonl/.json file.")


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
            result = services.queries_import(project=project, source=source, name=name)
        return Response(ImportOutputSerializer(result).data, status=status.HTTP_201_CREATED)


class ComparisonsImportApi(Api):
    """Import comparisons (with labels where the file has them), all or nothing.

    2019 layout, one question per line: `{"query", "sample0".."sample{K-1}", "best"?}`, texts as
    strings or token ids (`tokenizer=bytes`, or a tokenizer folder under ARTIFACTS_DIR). 2020
    layout (K=2): `{"info": {"id", "post"}, "summaries": [{"text", "policy"} ×2], "choice",
    "worker", "split"}`. The file's K must match the project's. Labels belong to the line's
    `labeler`/`worker` account, else to `labeler` (default "imported"); missing accounts are
    created as contractors that cannot log in. Options are query parameters; the file is the
    multipart field `file` or the raw body.
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

    @extend_schema(parameters=[ParamsSerializer], request=_IMPORT_REQUEST,
                   responses={201: ImportOutputSerializer, **errors(400, 401, 403, 404, 413, 415)})
    def post(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        params = self.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        options = params.validated_data
        source, name = _import_source(request)
        with service_errors():
            decoder = (services.tokenizer_load(options["tokenizer"], allowed_root=settings.ARTIFACTS_DIR)
                       if options["tokenizer"] else None)
            result = services.comparisons_import(
                project=project, source=source, name=name, layout=options["layout"], tokenizer=decoder,
                pad_id=options["pad_id"], labeler_username=options["labeler"], batch=options["batch"],
                is_calibration=options["calibration"],
            )
        return Response(ImportOutputSerializer(result).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------- exports


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
    "chosen", "rejected"}`, K−1 per label. Skipped labels are left out.
    """

    permission_classes = [CanManageProjects]
    renderer_classes = [JSONRenderer, JSONLinesRenderer]

    @extend_schema_serializer(component_name="LabelsExportParams")
    class ParamsSerializer(serializers.Serializer):
        layout = serializers.ChoiceField(choices=EXPORT_LAYOUTS, default="2019")
        split = serializers.ChoiceField(choices=Query.Split.choices, required=False)

    @extend_schema(parameters=[ParamsSerializer],
                   responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="JSON Lines."),
                              **errors(400, 401, 403, 404)})
    def get(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        params = self.ParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        layout = params.validated_data["layout"]
        with service_errors():
            lines = labels_export_jsonl(project=project, layout=layout, split=params.validated_data.get("split"))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-labels-{layout}.jsonl"'
        return response


# ---------------------------------------------------------------- instructions


class InstructionsOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    body = serializers.CharField(help_text="Markdown.")
    created_at = serializers.DateTimeField()


class InstructionsCurrentApi(Api):
    """The project's current instructions and whether the caller acknowledged them (404 when none)."""

    permission_classes = [CanLabel]

    @extend_schema_serializer(component_name="InstructionsCurrentOutput")
    class OutputSerializer(InstructionsOutputSerializer):
        acknowledged = serializers.BooleanField()

    @extend_schema(responses={200: OutputSerializer, **errors(401, 403, 404)})
    def get(self, request, project_slug: str):
        project = _project_for(request, project_slug)
        current = services.instructions_current(project)
        if current is None:
            raise Http404("No instructions are published for this project.")
        acknowledged = services.instructions_is_acknowledged(instructions=current, user=request.user)
        data = {"version": current.version, "body": current.body, "created_at": current.created_at,
                "acknowledged": acknowledged}
        return Response(self.OutputSerializer(data).data)


class InstructionsPublishApi(Api):
    """Publish a new instructions version; labelers must acknowledge it before their next label."""

    permission_classes = [CanManageProjects]

    @extend_schema_serializer(component_name="InstructionsPublishInput")
    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(max_length=100_000, help_text="Markdown.")

    @extend_schema(request=InputSerializer, responses={201: InstructionsOutputSerializer, **errors(400, 401, 403, 404)})
    def post(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors():
            instructions = services.instructions_publish(project=project, body=data.validated_data["body"],
                                                         author=request.user)
        return Response(InstructionsOutputSerializer(instructions).data, status=status.HTTP_201_CREATED)


class InstructionsAckApi(Api):
    """Acknowledge having read an instructions version of the project (idempotent)."""

    permission_classes = [CanLabel]

    @extend_schema_serializer(component_name="InstructionsAckInput")
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1)

    @extend_schema_serializer(component_name="InstructionsAckOutput")
    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField(source="instructions.version")
        acknowledged_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, **errors(400, 401, 403, 404)})
    def post(self, request, project_slug: str):
        project = _project_for(request, project_slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        instructions = Instructions.objects.filter(project=project, version=data.validated_data["version"]).first()
        if instructions is None:
            raise ServiceError(NotFound("No such instructions version in this project."))
        ack = services.instructions_acknowledge(instructions=instructions, user=request.user)
        return Response(self.OutputSerializer(ack).data)


class InstructionsVersionsApi(Api):
    """Every instructions version of the project, newest first, with its author and the number of
    labels given under it (researchers and admins). Publish with `instructions/publish/`."""

    permission_classes = [IsResearcher]

    @extend_schema_serializer(component_name="InstructionsVersionOutput")
    class OutputSerializer(InstructionsOutputSerializer):
        author = serializers.CharField(source="created_by.username", allow_null=True, default=None)
        label_count = serializers.IntegerField(help_text="Labels given under this version.")

    @extend_schema(responses={200: OutputSerializer(many=True), **errors(401, 403, 404)})
    def get(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        return Response(self.OutputSerializer(instructions_versions(project), many=True).data)
