"""Creating projects (the write side researchers use)."""
from __future__ import annotations

from labeling.errors import InvalidInput
from labeling.models import Project


def project_create(*, name: str, slug: str, k: int = 4, task_kind: str = Project.TaskKind.CONTINUATION,
                   labels_per_comparison: int = 1, calibration_share: float = 0.15, calibration_labels_wanted: int = 10,
                   description: str = "", created_by=None) -> Project:
    """Create a project after checking K (2–8), labels wanted (≥ 1), calibration share (0–1) and
    labels wanted on calibration comparisons (1–1000)."""
    if isinstance(k, bool) or not isinstance(k, int) or not Project.K_MIN <= k <= Project.K_MAX:
        raise InvalidInput(f"K must be an integer from {Project.K_MIN} to {Project.K_MAX}.", field="k")
    if not isinstance(labels_per_comparison, int) or labels_per_comparison < 1:
        raise InvalidInput("labels_per_comparison must be at least 1.", field="labels_per_comparison")
    if not 0.0 <= float(calibration_share) <= 1.0:
        raise InvalidInput("calibration_share must be between 0 and 1.", field="calibration_share")
    if isinstance(calibration_labels_wanted, bool) or not isinstance(calibration_labels_wanted, int) \
            or not 1 <= calibration_labels_wanted <= 1000:
        raise InvalidInput("calibration_labels_wanted must be an integer from 1 to 1000.",
                           field="calibration_labels_wanted")
    if task_kind not in Project.TaskKind.values:
        raise InvalidInput(f"task_kind must be one of {', '.join(Project.TaskKind.values)}.", field="task_kind")
    if Project.objects.filter(slug=slug).exists():
        raise InvalidInput(f"A project with slug {slug!r} exists.", field="slug")
    return Project.objects.create(
        name=name, slug=slug, k=k, task_kind=task_kind, labels_per_comparison=labels_per_comparison,
        calibration_share=calibration_share, calibration_labels_wanted=calibration_labels_wanted,
        description=description, created_by=created_by,
    )
