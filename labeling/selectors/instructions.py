"""Reads of instructions: the current version and whether a user acknowledged it, and behind the
researchers' instructions pages every version with its label count, and diffs."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.http import Http404

from labeling.models import Instructions, InstructionsAck, Project


def instructions_versions(project: Project) -> QuerySet[Instructions]:
    """The project's versions, newest first, with author and `label_count` (labels given under each); one query."""
    return (
        Instructions.objects.filter(project=project)
        .select_related("created_by")
        .annotate(label_count=Count("labels"))
        .order_by("-version")
    )


def instructions_get_version(*, project: Project, version: int) -> Instructions:
    """Version `version` of this project's instructions; 404 for another project's or an unknown one."""
    instructions = Instructions.objects.filter(project=project, version=version).first()
    if instructions is None:
        raise Http404("No such instructions version.")
    return instructions


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same", "removed" or "added"
    old_no: int | None  # 1-based line number in the old text; None for an added line
    new_no: int | None  # 1-based line number in the new text; None for a removed line
    text: str


@dataclass(frozen=True)
class DiffHunk:
    header: str  # unified-diff style: "@@ -3,4 +3,5 @@"
    lines: list[DiffLine]


def _range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start  # unified diff numbers an empty range by the line before it
    return f"{first},{length}"


def text_diff(old: str, new: str, *, context: int = 3) -> list[DiffHunk]:
    """Line diff of two texts (difflib), as unified-diff hunks with `context` unchanged lines around
    each change and both line numbers on every line. Equal texts give no hunks. Plain text out:
    the template escapes it."""
    a, b = old.replace("\r\n", "\n").split("\n"), new.replace("\r\n", "\n").split("\n")
    hunks = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        lines: list[DiffLine] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("same", i + 1, j1 + n + 1, a[i]) for n, i in enumerate(range(i1, i2))]
                continue
            lines += [DiffLine("removed", i + 1, None, a[i]) for i in range(i1, i2)]
            lines += [DiffLine("added", None, j + 1, b[j]) for j in range(j1, j2)]
        header = f"@@ -{_range(group[0][1], group[-1][2])} +{_range(group[0][3], group[-1][4])} @@"
        hunks.append(DiffHunk(header=header, lines=lines))
    return hunks


def instructions_current(project: Project) -> Instructions | None:
    return project.instructions.order_by("-version").first()


def instructions_is_acknowledged(*, instructions: Instructions, user) -> bool:
    return InstructionsAck.objects.filter(instructions=instructions, user=user).exists()
