"""API: a project's instructions, read, published as a new version, acknowledged, listed."""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from labeling import services
from labeling.api.base import Api, ServiceError, errors, service_errors
from labeling.errors import NotFound
from labeling.models import Instructions
from labeling.permissions import CanLabel, CanManageProjects, IsResearcher
from labeling.selectors import (
    project_get_for_researcher,
    project_get_for_user,
)
from labeling.selectors.instructions import (
    instructions_current,
    instructions_is_acknowledged,
    instructions_versions,
)


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
        project = project_get_for_user(slug=project_slug, user=request.user)
        current = instructions_current(project)
        if current is None:
            raise Http404("No instructions are published for this project.")
        acknowledged = instructions_is_acknowledged(instructions=current, user=request.user)
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
        project = project_get_for_user(slug=project_slug, user=request.user)
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
