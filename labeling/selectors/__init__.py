"""Reads of the labeling app, one module a feature (the same names as services/, views/, api/):
projects, serving (what a labeler is shown), comparisons, instructions, exports; the dashboards'
reads are the subpackage `labeling.selectors.quality`. Every function that takes a user-supplied id
also takes the actor. Import from here; the submodules are an implementation detail."""
from labeling.selectors.comparisons import (
    LABEL_CSV_HEADER,
    ComparisonDetail,
    comparison_detail,
    comparison_get_for_researcher,
    comparison_label_table,
)
from labeling.selectors.exports import (
    EXPORT_LAYOUTS,
    labels_export_jsonl,
    labels_export_rows,
    labels_for_export,
)
from labeling.selectors.instructions import (
    DiffHunk,
    DiffLine,
    instructions_current,
    instructions_get_version,
    instructions_is_acknowledged,
    instructions_versions,
    text_diff,
)
from labeling.selectors.projects import (
    project_get_for_labeler,
    project_get_for_researcher,
    project_get_for_user,
    project_progress,
    projects_for_user,
)
from labeling.selectors.serving import (
    LETTERS,
    AssignmentView,
    QueueCounts,
    ShownSample,
    assignment_for_display,
    labeler_labels_today,
    labeler_queue_counts,
)

__all__ = [
    "EXPORT_LAYOUTS", "LABEL_CSV_HEADER", "LETTERS", "AssignmentView", "ComparisonDetail", "DiffHunk", "DiffLine",
    "QueueCounts", "ShownSample", "assignment_for_display", "comparison_detail", "comparison_get_for_researcher",
    "comparison_label_table", "instructions_current", "instructions_get_version", "instructions_is_acknowledged",
    "instructions_versions", "labeler_labels_today", "labeler_queue_counts", "labels_export_jsonl", "labels_export_rows",
    "labels_for_export", "project_get_for_labeler", "project_get_for_researcher", "project_get_for_user",
    "project_progress", "projects_for_user", "text_diff",
]
