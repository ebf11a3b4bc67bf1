"""A project's training settings (`Project.training_settings`): checked field by field as a round and
the library will check them, then saved whole or not at all.

Sections: "base_model", "seed", "task" (task.py), "reward" (RewardFitConfig), "ppo" (PPOConfig plus the
product's `publish_every` and `online_sample`), "sample" (sampling.DEFAULTS) and "tripwires"
(tripwires.DEFAULTS). Errors are keyed "section.field" ("section" or "" when no field is named), so a
page shows each beside its field. The rules themselves live where the round applies them
(config_from_dict/validate, task_errors, task_conflicts, sample_config_errors); this module only
routes their messages to fields and refuses what they would pass silently (unknown sections, unknown
sample or tripwire keys, paths the worker sets itself).

Torch-free: the web process runs it (base_model_check reads files, it loads nothing).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

from django.db import transaction

from labeling.errors import Forbidden, InvalidInput
from labeling.models import Project
from training.rlhf.config import ConfigError, PPOConfig, RewardFitConfig, config_from_dict
from training.services.runs import config_split
from training.services.sampling import DEFAULTS as SAMPLE_DEFAULTS
from training.services.sampling import sample_config_errors
from training.services.task import TASK_DEFAULTS, section_truncation_errors, task_conflicts, task_errors, task_fill
from training.services.tripwires import DEFAULTS as TRIPWIRE_DEFAULTS

SECTIONS = ("base_model", "seed", "task", "reward", "ppo", "sample", "tripwires")
LIBRARY_CONFIGS = {"reward": RewardFitConfig, "ppo": PPOConfig}
# Product keys a project may set, by section (run.product; ppo.py and reward_fit.py read them; `gpus` starts
# either run under torchrun, training/services/ranks.py). The round splits every PRODUCT_KEYS key out of every
# section, but only these are read where listed, and it sets label_snapshot and tripwires itself: anywhere else
# they would be dropped without a word.
SECTION_PRODUCT_KEYS = {"ppo": ("publish_every", "online_sample", "gpus"), "reward": ("stored_tokens", "gpus")}
# Paths the worker sets for each run (reward_fit._NOT_FROM_RUN, ppo._OURS): a project's value is ignored.
WORKER_KEYS = {"reward": ("comparisons_path", "references_path", "output_dir", "metrics_path"),
               "ppo": ("policy_model", "queries_path", "checkpoint_dir", "metrics_path")}
# Sections a round start may override for one round (round_configs); tripwires stay the project's.
OVERRIDE_SECTIONS = ("base_model", "seed", "task", "reward", "ppo", "sample")
MAX_SETTINGS_CHARS = 100_000

# What the workers load (training/rlhf/models.py, tokenizer.py; tests hold these equal to the library's).
TINY = "tiny"
CHECKPOINT_POLICY_DIR = "policy"
META_FILE = "rlhf_model.json"
BYTE_TOKENIZER_FILE = "byte_tokenizer.json"
TOKENIZER_FILES = (BYTE_TOKENIZER_FILE, "tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model",
                   "spiece.model")


class SettingsInvalid(InvalidInput):
    """Training settings refused: `errors` maps "section.field" to its messages; the message lists them."""

    code = "invalid_settings"

    def __init__(self, errors: dict[str, list[str]]):
        lines = [f"{key or 'settings'}: {message}" for key, messages in errors.items() for message in messages]
        super().__init__("Training settings: " + "; ".join(lines) + ".")
        self.errors = errors


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_of(message: str, names) -> str | None:
    """The first known field a message names (the library's and the round's messages start with it)."""
    return next((word for word in re.findall(r"[a-z_]+", message) if word in names), None)


def _json_type_error(name: str, value: Any, default: Any) -> str | None:
    """A value of another JSON type than its default's (sections described by a DEFAULTS dict)."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float) or default is None:
        ok, kind = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            default is None and value is None), "a number" + (" or null" if default is None else "")
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    else:
        return None
    return None if ok else f"{name} must be {kind}, got {json.dumps(value)}"


def _unknown(section: str, values: dict, known) -> dict[str, list[str]]:
    return {f"{section}.{key}": [f"unknown field {key!r}{_did_you_mean(key, known)}"]
            for key in values if key not in known}


class _Errors(dict):
    def add(self, key: str, message: str) -> None:
        self.setdefault(key, [])
        if message not in self[key]:
            self[key].append(message)

    def merge(self, other: dict[str, list[str]]) -> None:
        for key, messages in other.items():
            for message in messages:
                self.add(key, message)


def _task_key(section: str, field: str, values: dict) -> str:
    """Where a message about `field` belongs: the section when it sets the field, else the task (which filled it)."""
    return f"{section}.{field}" if field in values or field not in TASK_DEFAULTS else f"task.{field}"


def _check_dict_section(errors: _Errors, section: str, values: dict, defaults: dict) -> None:
    errors.merge(_unknown(section, values, defaults))
    for key, value in values.items():
        if key in defaults and (message := _json_type_error(key, value, defaults[key])):
            errors.add(f"{section}.{key}", message)


def _check_task(errors: _Errors, task: dict) -> bool:
    """The project's task (task_errors, by field); True when it is sound enough to fill the sections."""
    before = len(errors)
    _check_dict_section(errors, "task", task, TASK_DEFAULTS)
    typed = set(errors)
    for message in task_errors({k: v for k, v in task.items() if k in TASK_DEFAULTS}):
        key = f"task.{_field_of(message, TASK_DEFAULTS) or ''}".rstrip(".")
        if key not in typed:  # a value of the wrong type is named once, by the type check
            errors.add(key, message)
    return len(errors) == before


def _check_conflicts(errors: _Errors, section: str, values: dict, task: dict) -> None:
    """A section that sets a task field differently from the task (the round's task_conflicts, one section)."""
    for message in task_conflicts({"task": {}, section: values}, task):
        field = _field_of(message.split(".", 1)[-1], TASK_DEFAULTS) or ""
        errors.add(f"{section}.{field}".rstrip("."), f"{message}: set it once, in the task section")


def _check_library(errors: _Errors, section: str, values: dict, task: dict | None) -> None:
    """reward/ppo as the library builds them (unknown keys, JSON types) and, the task filled in, validates them."""
    cls = LIBRARY_CONFIGS[section]
    known = {f.name for f in dataclasses.fields(cls)}
    for key in WORKER_KEYS.get(section, ()):
        if key in values:
            errors.add(f"{section}.{key}", f"{key} is set by the worker for each run; a project cannot set it")
    values = {k: v for k, v in values.items() if k not in WORKER_KEYS.get(section, ())}
    try:
        config_from_dict(cls, values)
    except ConfigError as error:
        for field, messages in error.fields.items():
            for message in messages:
                errors.add(f"{section}.{field}".rstrip("."), message)
        known_values = {k: v for k, v in values.items() if k in known}
        if len(known_values) < len(values):
            _check_library(errors, section, known_values, task)  # the known keys' types and values too
        return
    if task is None:
        return
    filled = task_fill(values, task, library=True)
    if section == "ppo":  # a round's PPO optimises its fitted reward model (a folder), as round_start checks it
        filled = {"reward": "<the round's reward model>", **filled}
    try:
        config_from_dict(cls, filled).validate()
    except ConfigError as error:
        for field, messages in error.fields.items():
            for message in messages:
                errors.add(_task_key(section, field, values).rstrip("."), message)
    except TypeError as error:  # a value validate() compared that the type check let through
        errors.add(section, str(error))


def _check_sample(errors: _Errors, key: str, values: dict, task: dict | None) -> None:
    before = len(errors)
    _check_dict_section(errors, key, values, SAMPLE_DEFAULTS)
    if task is None or len(errors) != before:
        return
    for message in sample_config_errors(task_fill(values, task)):
        field = _field_of(message, SAMPLE_DEFAULTS) or ""
        errors.add(_task_key(key, field, values).rstrip(".") if key == "sample" else key, message)


def _check_product(errors: _Errors, section: str, product: dict, task: dict | None, library: dict | None = None
                   ) -> None:
    allowed = SECTION_PRODUCT_KEYS.get(section, ())
    for key in product:
        if key not in allowed:
            where = ", ".join(f"{s}.{k}" for s, keys in SECTION_PRODUCT_KEYS.items() for k in keys)
            errors.add(f"{section}.{key}", f"{key} is not a setting of the {section} section (product settings: "
                                           f"{where}; tripwires have their own section)")
    if "gpus" in allowed and "gpus" in product:
        from training.services.rounds import gpus_errors

        # The section's library keys too: what its ranks cannot do is named here, as the round would name it.
        for message in gpus_errors(product["gpus"], library or {}, product, section=section):
            errors.add(f"{section}.gpus", message.split(": ", 1)[1])
    if "stored_tokens" in product and not isinstance(product["stored_tokens"], bool):
        errors.add(f"{section}.stored_tokens", "stored_tokens must be true or false")
    every = product.get("publish_every", 0)
    if "publish_every" in allowed and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        errors.add(f"{section}.publish_every", f"publish_every must be a whole number >= 0 (0: off), got "
                                               f"{json.dumps(every)}")
    if "online_sample" in allowed and "online_sample" in product:
        online = product["online_sample"]
        if not isinstance(online, dict):
            errors.add(f"{section}.online_sample", "online_sample must be an object of sample settings")
            return
        nested = _Errors()
        _check_sample(nested, "online_sample", online, task)
        if task is not None:
            _check_conflicts(nested, "online_sample", online, task)
        for key, messages in nested.items():
            field = key.split(".", 1)[1] if "." in key else ""
            for message in messages:
                errors.add(f"{section}.online_sample", f"{field}: {message}" if field else message)


def training_settings_errors(settings: Any) -> dict[str, list[str]]:
    """Every problem of a project's training settings, keyed "section.field" ("section" or "" for the
    whole); empty when a round started with them passes its own checks. Nothing is dropped: an unknown
    section or key is an error, with the closest known name."""
    errors = _Errors()
    if not isinstance(settings, dict):
        errors.add("", "training settings must be a JSON object of sections")
        return dict(errors)
    for key in settings:
        if key not in SECTIONS:
            errors.add(str(key), f"unknown section {key!r}{_did_you_mean(key, SECTIONS)}")
    if "base_model" in settings:
        base = settings["base_model"]
        message = base_model_check(base) if isinstance(base, str) else "base_model must be a string"
        if message:
            errors.add("base_model", message)
    seed = settings.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        errors.add("seed", f"seed must be a whole number >= 0, got {json.dumps(seed)}")
    sections = {}
    for name in ("task", "reward", "ppo", "sample", "tripwires"):
        value = settings.get(name, {})
        if isinstance(value, dict):
            sections[name] = value
        else:
            errors.add(name, f"the {name} section must be an object of fields")
    # The sections are filled from the task as the round fills them. A broken task (its errors are listed)
    # fills in the defaults instead, so the sections' own values are still checked, and is not blamed twice.
    task_ok = "task" in sections and _check_task(errors, sections["task"])
    task = sections["task"] if task_ok else {}
    found = _Errors()
    for name in ("reward", "ppo", "sample"):
        if name not in sections:
            continue
        library, product = config_split(sections[name])
        _check_product(found, name, product, task, library)
        if name == "sample":
            _check_sample(found, name, library, task)
        else:
            _check_library(found, name, library, task)
        if task_ok:
            _check_conflicts(found, name, library, task)
    for message in section_truncation_errors({k: v for k, v in sections.items() if k in LIBRARY_CONFIGS}):
        found.add(message.split(" ", 1)[0], message)
    errors.merge({key: messages for key, messages in found.items() if task_ok or not key.startswith("task.")})
    if "tripwires" in sections:
        _check_dict_section(errors, "tripwires", sections["tripwires"], TRIPWIRE_DEFAULTS)
    return dict(errors)


def project_settings_errors(*, project: Project, settings: Any) -> dict[str, list[str]]:
    """What the project's labels cannot feed (the settings well-formed otherwise): a Likert axis the project does
    not ask for, or a "none acceptable" term on a project that does not offer the answer. Without this check the
    fit would stop in the worker (training/rlhf refuses a term no record feeds)."""
    errors = _Errors()
    reward = settings.get("reward") if isinstance(settings, dict) else None
    if not isinstance(reward, dict):
        return {}
    axis, axes = reward.get("likert_axis", ""), project.likert_axes or []
    if isinstance(axis, str) and axis and axis not in axes:
        errors.add("reward.likert_axis", f"likert_axis {axis!r} is not one of this project's Likert axes"
                                         f" ({', '.join(axes) if axes else 'it has none'})")
    coef = reward.get("acceptability_coef", 0)
    if isinstance(coef, (int, float)) and not isinstance(coef, bool) and coef > 0 and not project.allow_none_acceptable:
        errors.add("reward.acceptability_coef",
                   'acceptability_coef needs "none acceptable" answers; this project does not offer them')
    return dict(errors)


def training_settings_save(*, project: Project, settings: Any, user) -> Project:
    """Store `settings` as the project's training settings, or raise SettingsInvalid (errors by field)
    and write nothing. Researchers and admins who manage projects only."""
    if not (user.is_authenticated and user.has_perm("labeling.manage_projects")):
        raise Forbidden("Only researchers and admins change training settings.")
    errors = training_settings_errors(settings) or project_settings_errors(project=project, settings=settings)
    if errors:
        raise SettingsInvalid(errors)
    with transaction.atomic():
        Project.objects.filter(id=project.id).update(training_settings=settings)
    project.training_settings = settings
    return project


def settings_with_overrides(settings: dict, overrides: dict) -> dict:
    """The settings a round started with `overrides` runs under, merged as round_configs merges them
    (a section's fields over the project's; base_model and seed replaced)."""
    merged = dict(settings or {})
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def round_overrides_errors(*, project: Project, overrides: Any) -> dict[str, list[str]]:
    """One-round overrides checked as the settings they make (only the sections a round reads)."""
    if not isinstance(overrides, dict):
        return {"": ["overrides must be a JSON object of sections"]}
    errors = _Errors()
    for key in overrides:
        if key not in OVERRIDE_SECTIONS:
            hint = " (tripwires are the project's: change them in the training settings)" if key == "tripwires" \
                else _did_you_mean(key, OVERRIDE_SECTIONS)
            errors.add(str(key), f"not a section a round can override: {key!r}{hint}")
    settings = settings_with_overrides(project.training_settings or {}, overrides)
    errors.merge(training_settings_errors(settings) or project_settings_errors(project=project, settings=settings))
    return dict(errors)


def base_model_check(name: str) -> str | None:
    """Why the workers could not load `name` as a base model, or None: "tiny"/"tiny:<seed>"; a folder with a
    parsable config.json and a tokenizer (a PPO checkpoint's policy/ counts); or a hub id already in the
    local Hugging Face cache (workers have no network). Reads files only, loads no model."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        return "base_model must not be empty (\"tiny\" for the built-in test model)"
    if name == TINY or name.startswith(TINY + ":"):
        seed = name.split(":", 1)[1] if ":" in name else "0"
        return None if seed.isdigit() else f"{name!r}: the seed after \"tiny:\" must be a whole number"
    path = Path(name).expanduser()
    if path.exists() or path.is_absolute() or name.startswith((".", "~")):
        return _folder_check(path, name)
    return _hub_check(name)


def _folder_check(path: Path, name: str) -> str | None:
    if not path.exists():
        return f"no folder {name!r} on this server"
    if not path.is_dir():
        return f"{name!r} is a file, not a model folder"
    if (path / CHECKPOINT_POLICY_DIR / META_FILE).is_file():  # a PPO checkpoint: its policy is loaded
        path = path / CHECKPOINT_POLICY_DIR
    if not os.access(path, os.R_OK | os.X_OK):
        return f"folder {name!r} is not readable"
    config = path / "config.json"
    if not config.is_file():
        return f"folder {name!r} has no config.json (a model folder is written by save_pretrained)"
    try:
        parsed = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{name!r}: config.json does not parse ({error})"
    if not isinstance(parsed, dict):
        return f"{name!r}: config.json is not a JSON object"
    if not any((path / file).is_file() for file in TOKENIZER_FILES):
        return f"folder {name!r} has no tokenizer (one of {', '.join(TOKENIZER_FILES)})"
    return None


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _hub_check(name: str) -> str | None:
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        return f"{name!r} is neither a folder on this server nor a Hugging Face model id"
    cache = _hub_cache() / ("models--" + name.replace("/", "--"))
    if any(cache.glob("snapshots/*/config.json")):
        return None
    return (f"{name!r} is not a folder on this server and not in the local Hugging Face cache ({_hub_cache()}); "
            "the workers have no network: download it where they can read it and give its folder")
