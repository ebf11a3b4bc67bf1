"""DRF interface of the labeling app: thin views that parse, check permission, call one service."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import services
from labeling.errors import LabelingError
from labeling.permissions import CanLabel
from labeling.selectors import assignment_for_display, project_get_for_labeler


class ServiceError(APIException):
    """Carries a LabelingError's status and message to the client."""

    def __init__(self, error: LabelingError):
        self.status_code = error.status_code
        detail = {"detail": error.message, "code": error.code}
        if error.field:
            detail["field"] = error.field
        super().__init__(detail=detail, code=error.code)


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


class AssignmentNextApi(APIView):
    """Lease the next comparison in a project for the calling labeler (204 when none is left)."""

    permission_classes = [CanLabel]

    @extend_schema(request=None, responses={200: AssignmentOutputSerializer, 204: None})
    def post(self, request, project_slug: str):
        project = project_get_for_labeler(slug=project_slug, user=request.user)
        assignment = services.comparison_next_for_labeler(project=project, labeler=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(AssignmentOutputSerializer(assignment_for_display(assignment)).data)


class LabelCreateApi(APIView):
    """Answer a leased assignment. Idempotent: a replay returns the stored label with 200."""

    permission_classes = [CanLabel]

    class FlagSerializer(serializers.Serializer):
        position = serializers.IntegerField(min_value=0, max_value=7)
        note = serializers.CharField(max_length=2000)
        suggested_correction = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")

    class InputSerializer(serializers.Serializer):
        position = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="Display position chosen, 0 = A; omit when skipping."
        )
        duration_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000)
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

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment_id = serializers.IntegerField()
        chosen_index = serializers.IntegerField(allow_null=True, help_text="Canonical index of the chosen sample.")
        skipped = serializers.BooleanField()
        unsure = serializers.BooleanField()
        duration_ms = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer})
    def post(self, request, assignment_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = services.LabelInput(**data.validated_data)
        try:
            label, created = services.label_submit(assignment_id=assignment_id, labeler=request.user, answer=answer)
        except LabelingError as error:
            raise ServiceError(error) from error
        return Response(
            self.OutputSerializer(label).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
