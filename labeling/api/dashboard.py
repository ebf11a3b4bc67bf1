"""DRF endpoint of the labeler table (researchers only); the same figures as the dashboard page."""
from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from labeling.api.base import Api, errors, service_errors
from labeling.errors import InvalidInput
from labeling.permissions import IsResearcher
from labeling.selectors import project_get_for_researcher
from labeling.selectors.quality import ALPHA, SORT_KEYS, TESTS, labelers_quality


class RateSerializer(serializers.Serializer):
    hits = serializers.FloatField()
    n = serializers.FloatField()
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="Wilson 95% interval.")
    high = serializers.FloatField(allow_null=True)


class TestResultSerializer(serializers.Serializer):
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="One-sided.")
    n = serializers.IntegerField()
    observed = serializers.FloatField()
    expected = serializers.FloatField()
    flagged = serializers.SerializerMethodField(help_text=f"p < {ALPHA}.")

    def get_flagged(self, obj) -> bool:
        return obj.flagged(ALPHA)


class AgreementSerializer(serializers.Serializer):
    same = serializers.IntegerField()
    different = serializers.IntegerField()
    kway = RateSerializer(help_text="Same choice as the researchers' answer; chance 1/K.")
    pairwise = RateSerializer(help_text="Implied pairwise preferences; chance 0.5.")


class LabelerTableApi(Api):
    """One row per user who labeled in the project: pace, rates, agreement with researchers, shortcut detectors,
    population anomaly test."""

    permission_classes = [IsResearcher]

    @extend_schema_serializer(component_name="LabelerQualityOutput")
    class OutputSerializer(serializers.Serializer):
        labeler_id = serializers.IntegerField()
        username = serializers.CharField()
        is_researcher = serializers.BooleanField()
        labels = serializers.IntegerField()
        answers = serializers.IntegerField()
        labels_per_hour = serializers.FloatField(allow_null=True)
        median_s = serializers.FloatField(allow_null=True)
        p10_s = serializers.FloatField(allow_null=True)
        skip_rate = RateSerializer()
        flag_rate = RateSerializer()
        unsure_rate = RateSerializer()
        agreement = AgreementSerializer()
        position = TestResultSerializer(help_text="χ² of chosen display positions against uniform.")
        length = TestResultSerializer(help_text="Picks a longest sample more than chance (exact test).")
        copy = TestResultSerializer(help_text="Picks the sample copying most of the context more than chance.")
        too_fast = TestResultSerializer(help_text="Share of answers faster than reading speed, above the allowed share.")
        population = TestResultSerializer(
            help_text="Agrees with the majority of all labels on the same comparisons less often than those labels do: "
                      "statistic = their agreement rate minus the population's, exact Poisson-binomial test.")
        flags = serializers.ListField(child=serializers.ChoiceField(choices=TESTS))

    @extend_schema(
        parameters=[OpenApiParameter("sort", str, description=f"One of {', '.join(SORT_KEYS)}; prefix - to reverse.")],
        responses={200: OutputSerializer(many=True), **errors(400, 401, 403, 404)},
    )
    def get(self, request, project_slug: str):
        project = project_get_for_researcher(slug=project_slug, user=request.user)
        sort = request.query_params.get("sort", "username")
        with service_errors():
            if sort.lstrip("-") not in SORT_KEYS:
                raise InvalidInput(f"Unknown sort: use one of {', '.join(SORT_KEYS)}.", field="sort")
        return Response(self.OutputSerializer(labelers_quality(project, sort=sort), many=True).data)
