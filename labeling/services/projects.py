"""Creating projects (the write side researchers use)."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from labeling.errors import InvalidInput
from labeling.label_types import LikertAxes
from labeling.models import Instructions, Project
from labeling.services.instructions import instructions_publish

# Slugs that are path segments of the project pages themselves: /projects/new/ (the new-project
# page) and /api/projects/create/ (the API's create endpoint) would hide a project of that slug.
RESERVED_SLUGS = frozenset({"new", "create"})

_NAME_MAX, _SLUG_MAX = Project._meta.get_field("name").max_length, Project._meta.get_field("slug").max_length


def project_create(*, name: str, slug: str, k: int = 4, task_kind: str = Project.TaskKind.CONTINUATION,
                   labels_per_comparison: int = 1, calibration_share: float = 0.15, calibration_labels_wanted: int = 10,
                   description: str = "", created_by=None, label_type: str = Project.LabelType.BEST_OF_K,
                   likert_axes: list[str] | None = None, allow_none_acceptable: bool = False) -> Project:
    """Create a project after checking the name (1–200 characters), the slug (letters, digits, - and _;
    not taken, not a reserved page name), K (2–8), labels wanted (≥ 1), calibration share (0–1) and
    labels wanted on calibration comparisons (1–1000), the label type (the 9-point scale needs K = 2), the Likert
    axes (labeling/label_types.LikertAxes) and whether "none acceptable" is an answer."""
    if not name.strip() or len(name) > _NAME_MAX:
        raise InvalidInput(f"The name must be 1 to {_NAME_MAX} characters.", field="name")
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidInput("The slug may hold only letters, digits, hyphens and underscores.", field="slug") from None
    if len(slug) > _SLUG_MAX:
        raise InvalidInput(f"The slug is limited to {_SLUG_MAX} characters.", field="slug")
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"{slug!r} is the name of a page; choose another slug.", field="slug")
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
    if label_type not in Project.LabelType.values:
        raise InvalidInput(f"label_type must be one of {', '.join(Project.LabelType.values)}.", field="label_type")
    if label_type == Project.LabelType.PAIRWISE_CONFIDENCE and k != 2:
        raise InvalidInput("The 9-point confidence scale compares two samples: set K to 2.", field="label_type")
    likert_axes = list(likert_axes or [])
    problem = LikertAxes.axes_errors(likert_axes)
    if problem:
        raise InvalidInput(problem, field="likert_axes")
    if not isinstance(allow_none_acceptable, bool):
        raise InvalidInput("allow_none_acceptable must be true or false.", field="allow_none_acceptable")
    if task_kind not in Project.TaskKind.values:
        raise InvalidInput(f"task_kind must be one of {', '.join(Project.TaskKind.values)}.", field="task_kind")
    if Project.objects.filter(slug=slug).exists():
        raise InvalidInput(f"A project with slug {slug!r} exists.", field="slug")
    try:
        with transaction.atomic():  # a savepoint: a concurrent create of the same slug loses here, cleanly
            return Project.objects.create(
                name=name, slug=slug, k=k, task_kind=task_kind, labels_per_comparison=labels_per_comparison,
                calibration_share=calibration_share, calibration_labels_wanted=calibration_labels_wanted,
                description=description, created_by=created_by, label_type=label_type,
                likert_axes=likert_axes, allow_none_acceptable=allow_none_acceptable,
            )
    except IntegrityError:
        if Project.objects.filter(slug=slug).exists():
            raise InvalidInput(f"A project with slug {slug!r} exists.", field="slug") from None
        raise


def project_create_with_instructions(*, instructions: str, created_by=None, **fields) -> tuple[Project, Instructions]:
    """Create a project (project_create's checks and fields) and publish `instructions` (Markdown) as
    its version 1, in one transaction: either both exist afterwards or neither. Bad instructions are
    InvalidInput with field "instructions"."""
    with transaction.atomic():
        project = project_create(created_by=created_by, **fields)
        try:
            first = instructions_publish(project=project, body=instructions, author=created_by)
        except InvalidInput as error:
            raise InvalidInput(error.message, field="instructions") from error
    return project, first
