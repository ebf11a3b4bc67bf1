"""Writes of the labeling app. Import from here; the submodules are an implementation detail."""
from labeling.services.assignments import (
    FlagInput,
    LabelInput,
    assignments_expire,
    comparison_next_by_slug,
    comparison_next_for_labeler,
    comparisons_withdraw,
    label_submit,
)
from labeling.services.instructions import (
    instructions_acknowledge,
    instructions_current,
    instructions_is_acknowledged,
    instructions_publish,
)
from labeling.services.derived import comparisons_text_figures_fill, labels_display_position_fill
from labeling.services.projects import comparison_create, project_create

__all__ = [
    "FlagInput", "LabelInput", "assignments_expire", "comparison_create", "comparison_next_by_slug",
    "comparisons_text_figures_fill", "labels_display_position_fill",
    "comparison_next_for_labeler",
    "comparisons_withdraw", "instructions_acknowledge", "instructions_current", "instructions_is_acknowledged",
    "instructions_publish", "label_submit", "project_create",
]
from labeling.services.imports import ImportResult, comparisons_import, queries_import, tokenizer_load  # noqa: E402

__all__ += ["ImportResult", "comparisons_import", "queries_import", "tokenizer_load"]
from labeling.services.simulation import (  # noqa: E402
    LabelerSpec,
    SimulationCounts,
    simulate_labeling,
    simulated_labeling_start,
    simulated_labelers_ensure,
)

__all__ += ["LabelerSpec", "SimulationCounts", "simulate_labeling", "simulated_labeling_start", "simulated_labelers_ensure"]
