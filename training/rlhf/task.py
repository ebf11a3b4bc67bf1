"""The task definition a model was trained for, written beside it (``task.json``) and checked where models
meet: a reward model scores responses of the shape it was fitted on, and a policy is sampled as it was tuned.

2019 asserts that the reward model's, the policy's and the samplers' query and response lengths, temperature
and truncation are equal; mixing them trains a reward model on responses of one shape and scores PPO's of
another. The record also names the tokenizer by a fingerprint (its ids of a probe text and its special
tokens), so a reward model of one vocabulary is never fed another's ids. Folders written before this file
existed have no record and are not checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from training.rlhf.config import ConfigError

TASK_FILE = "task.json"
TASK_FIELDS = ("query_length", "response_length", "temperature", "truncate_token", "truncate_after")
EOS_TEXT = "<eos>"  # a truncation text that means the tokenizer's end-of-text token
_PROBE = "The quick brown fox, 2019 & 2020: TL;DR — ünïcödé."


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short digest of how ``tokenizer`` encodes a probe text and which ids its eos and pad are."""
    spec = {"probe": list(tokenizer.encode(_PROBE)), "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def truncate_token_of(tokenizer: Any, text: str) -> int | None:
    """The token id a truncation text names (``"<eos>"``: the tokenizer's eos); None for no rule. The text
    must be exactly one token of this tokenizer."""
    if not text:
        return None
    if text == EOS_TEXT:
        return int(tokenizer.eos_token_id)
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise ConfigError(f"truncate_text {text!r} is {len(ids)} tokens of this tokenizer; it must be exactly one",
                          {"truncate_text": [f"truncate_text {text!r} must be exactly one token (it is {len(ids)})"]})
    return ids[0]


def task_record(config: Any, tokenizer: Any) -> dict:
    """The task fields of a RewardFitConfig or PPOConfig, and the tokenizer's fingerprint."""
    return {**{name: getattr(config, name) for name in TASK_FIELDS}, "tokenizer": tokenizer_fingerprint(tokenizer)}


def task_write(folder: str | Path, config: Any, tokenizer: Any) -> None:
    (Path(folder) / TASK_FILE).write_text(json.dumps(task_record(config, tokenizer), indent=2))


def task_read(folder: str | Path) -> dict | None:
    path = Path(folder) / TASK_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def task_differences(ours: dict, theirs: dict) -> list[str]:
    """'response_length: 24 here, 16 there' for each field the two records disagree on."""
    return [f"{name}: {ours.get(name)!r} here, {theirs.get(name)!r} there"
            for name in (*TASK_FIELDS, "tokenizer") if name in theirs and ours.get(name) != theirs.get(name)]


def task_check(folder: str | Path, config: Any, tokenizer: Any, what: str) -> None:
    """Refuse (ConfigError naming each differing field) when ``folder``'s recorded task is not ``config``'s."""
    recorded = task_read(folder)
    if recorded is None:
        return
    differences = task_differences(task_record(config, tokenizer), recorded)
    if differences:
        raise ConfigError(f"{what} at {folder} was trained for another task definition: " + "; ".join(differences),
                          {d.split(":")[0]: [f"{what}: {d}"] for d in differences})
