"""API: projects listed, created, read, and their labeling progress."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from labeling import services
from labeling.api.base import Api, errors, service_errors
from labeling.models import Project
from labeling.permissions import CanLabel, CanManageProjects, IsResearcher
from labeling.roles import is_researcher
from labeling.selectors import (
    project_get_for_researcher,
    project_get_for_user,
    project_progress,
    projects_for_user,
)


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
        projects = Project.objects.order_by("name") if is_researcher(request.user) else projects_for_user(request.user)
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


class ProjectDetailApi(Api):
    permission_classes = [CanLabel]

    @extend_schema(responses={200: ProjectOutputSerializer, **errors(401, 403, 404)})
    def get(self, request, project_slug: str):
        return Response(ProjectOutputSerializer(project_get_for_user(slug=project_slug, user=request.user)).data)


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
