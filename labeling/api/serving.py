"""API hot path: the next comparison for a labeler and the label for an assignment (plain dicts,
no serializer on the way out, for the hot path's latency)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from labeling import services
from labeling.api.base import Api, errors, service_errors
from labeling.permissions import CanLabel
from labeling.selectors import (
    assignment_for_display,
)


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
    gives the same LabelInput (tests/labeling/api/test_schema_fuzz.py holds the two to that)."""
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
        confidence = serializers.IntegerField(
            min_value=1, max_value=9, required=False, allow_null=True, default=None,
            help_text="Pairwise-confidence projects only: the 9-point scale as shown, 1 = A definitely better, "
                      "5 = about the same, 9 = B definitely better; its side must agree with `position`.")
        ranking = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=8), required=False, allow_null=True, default=None,
            max_length=8, help_text="Ranking projects only: the rank of each sample as shown (A, B, …), 1 = best, "
                                    "equal ranks tie, e.g. [2, 1, 2]; `position` may be omitted (the top tier's first).")
        likert = serializers.DictField(
            child=serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=7), max_length=8),
            required=False, allow_null=True, default=None,
            help_text="Projects with Likert axes only: {axis: [rating 1–7 of each sample as shown]}, every axis.")
        none_acceptable = serializers.BooleanField(
            default=False, help_text="Projects that allow it: every sample is bad (`position` is then the least bad).")

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
        confidence = serializers.IntegerField(allow_null=True, help_text="Canonical 9-point scale (1 = sample 0 "
                                                                         "definitely better), or null.")
        ranking = serializers.ListField(child=serializers.IntegerField(), allow_null=True,
                                        help_text="Rank of each sample in canonical order (1 = best), or null.")
        likert = serializers.DictField(child=serializers.ListField(child=serializers.IntegerField()), allow_null=True,
                                       help_text="{axis: [rating of each sample in canonical order]}, or null.")
        none_acceptable = serializers.BooleanField()
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
            "confidence": label.confidence,
            "ranking": label.ranking,
            "likert": label.likert,
            "none_acceptable": label.none_acceptable,
            "duration_ms": label.duration_ms,
            "created_at": _DATETIME.to_representation(label.created_at),
        }
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# ---------------------------------------------------------------- projects


# ---------------------------------------------------------------- imports


# ---------------------------------------------------------------- exports


# ---------------------------------------------------------------- instructions
