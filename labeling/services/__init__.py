"""Writes of the labeling app, one module a feature (the same names as selectors/, views/, api/):
serving (next comparison, leases), labels (submit), comparisons, projects, instructions, imports,
simulation, demo, account (API tokens). Import from here; the submodules are an implementation detail."""
from labeling.services.account import token_create, token_revoke
from labeling.services.comparisons import comparison_create, comparisons_text_figures_fill, comparisons_withdraw
from labeling.services.imports import ImportResult, comparisons_import, queries_import, tokenizer_load
from labeling.services.instructions import instructions_acknowledge, instructions_publish
from labeling.services.labels import FlagInput, LabelInput, label_submit, label_undo, labels_display_position_fill
from labeling.services.projects import project_create, project_create_with_instructions
from labeling.services.serving import assignments_expire, comparison_next_by_slug, comparison_next_for_labeler
from labeling.services.simulation import (
    LabelerSpec,
    SimulationCounts,
    simulate_labeling,
    simulated_labelers_ensure,
    simulated_labeling_start,
)

__all__ = [
    "FlagInput", "ImportResult", "LabelInput", "LabelerSpec", "SimulationCounts", "assignments_expire",
    "comparison_create", "comparison_next_by_slug", "comparison_next_for_labeler", "comparisons_import",
    "comparisons_text_figures_fill", "comparisons_withdraw", "instructions_acknowledge", "instructions_publish",
    "label_submit", "label_undo", "labels_display_position_fill", "project_create", "project_create_with_instructions",
    "queries_import", "simulate_labeling", "simulated_labeling_start", "simulated_labelers_ensure", "token_create",
    "token_revoke", "tokenizer_load",
]
