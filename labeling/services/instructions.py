"""Versioned labeling instructions and labelers' acknowledgements."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from labeling.errors import InvalidInput
from labeling.models import Instructions, InstructionsAck, Project


def instructions_current(project: Project) -> Instructions | None:
    return project.instructions.order_by("-version").first()


def instructions_is_acknowledged(*, instructions: Instructions, user) -> bool:
    return InstructionsAck.objects.filter(instructions=instructions, user=user).exists()


def instructions_publish(*, project: Project, body: str, author=None) -> Instructions:
    """Publish a new version; every labeler must acknowledge it before their next label."""
    if not body.strip():
        raise InvalidInput("Instructions cannot be empty.", field="body")
    with transaction.atomic():
        Project.objects.select_for_update().filter(id=project.id).first()  # serialise version numbers
        last = project.instructions.aggregate(v=Max("version"))["v"] or 0
        return Instructions.objects.create(project=project, version=last + 1, body=body, created_by=author)


def instructions_acknowledge(*, instructions: Instructions, user) -> InstructionsAck:
    ack, _ = InstructionsAck.objects.get_or_create(instructions=instructions, user=user)
    return ack
