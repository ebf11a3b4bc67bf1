"""Fixtures for the pure-PyTorch library tests: CPU only, one thread, no network."""

import os

import pytest
import torch

# No test may reach a model hub; from_pretrained on a local folder must work offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run several times faster on one thread, and timings stay comparable."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
