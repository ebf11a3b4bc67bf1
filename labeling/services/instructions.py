"""Versioned labeling instructions and labelers' acknowledgements."""
from __future__ import annotations

from django.db import transaction

from labeling.errors import InvalidInput
from labeling.models import Instructions, InstructionsAck, Project
from labeling.selectors.instructions import instructions_current

MAX_BODY_CHARS = 100_000


def instructions_publish(*, project: Project, body: str, author=None) -> Instructions:
    """Publish a new version; every labeler must acknowledge it before their next label.

    Empty text, or text equal to the current version's (line endings and trailing whitespace
    aside), is InvalidInput and writes nothing: an unchanged version would only make every
    labeler re-acknowledge for nothing.
    """
    body = body.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    if not body.strip():
        raise InvalidInput("Instructions cannot be empty.", field="body")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(f"Instructions are limited to {MAX_BODY_CHARS} characters.", field="body")
    with transaction.atomic():
        Project.objects.select_for_update().filter(id=project.id).first()  # serialise version numbers
        current = instructions_current(project)
        if current is not None and current.body.replace("\r\n", "\n").rstrip() == body.rstrip():
            raise InvalidInput(f"Nothing changed since v{current.version}: edit the text before publishing.",
                               field="body")
        last = current.version if current else 0
        return Instructions.objects.create(project=project, version=last + 1, body=body, created_by=author)


def instructions_acknowledge(*, instructions: Instructions, user) -> InstructionsAck:
    ack, _ = InstructionsAck.objects.get_or_create(instructions=instructions, user=user)
    return ack
