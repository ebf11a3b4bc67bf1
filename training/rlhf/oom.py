"""Running out of accelerator memory, said in the settings' words.

A CUDA out-of-memory error in reward fitting or PPO becomes ``OutOfMemory``, whose message names the settings
that trade memory for time (``micro_batch_size``, ``forward_batch_size``, ``gradient_checkpointing``,
``precision``) with their current values. Nothing is saved on the way out: the last checkpoint written before
the error stays the newest, so the run resumes from it once the settings change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class OutOfMemory(RuntimeError):
    """Out of accelerator memory; the message says which settings to change."""


def memory_advice(config: Any, phase: str) -> str:
    knobs = [
        f"micro_batch_size (now {getattr(config, 'micro_batch_size', None)}: rows per forward and backward; "
        f"smaller divides of the batch use less)",
        f"gradient_checkpointing (now {str(getattr(config, 'gradient_checkpointing', False)).lower()}: true keeps "
        f"fewer activations for about one more forward)",
    ]
    if hasattr(config, "forward_batch_size"):
        knobs.insert(1, f"forward_batch_size (now {config.forward_batch_size}: rows per no-grad forward in the "
                        f"rollout)")
    if getattr(config, "precision", "fp32") == "fp32":
        knobs.append("precision (now fp32: bf16-mixed halves the activations)")
    return (f"out of accelerator memory during {phase}; lower or set " + "; ".join(knobs)
            + ". The last checkpoint is kept: resume after changing them.")


@contextlib.contextmanager
def out_of_memory_advice(config: Any, phase: str) -> Iterator[None]:
    """Within: a CUDA out-of-memory error is raised again as ``OutOfMemory`` naming the settings."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfMemory(memory_advice(config, phase)) from error
