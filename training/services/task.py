"""One task definition for the runs of a loop: what a query and a response are (query and response
lengths in tokens, sampling temperature, where a response may be cut). 2019 asserts the reward
model's, the policy's and the samplers' are equal; mixing them trains a reward model on responses
of one shape and scores PPO's of another.

A project's `training_settings["task"]` holds it (`TASK_DEFAULTS` where it is silent); a round fills
each run's config with it, and a section (`reward`, `ppo`, `sample`, PPO's `online_sample`) that sets
a task field differently is refused when the round starts, naming the fields. A run started on its
own against another run's reward model or policy is checked the same way (`task_conflicts`).
The tokenizer is the base model's, shared by every run of a round (one `base_model`).
"""
from __future__ import annotations

# Fields every sampler and scorer of the loop must agree on, with the round's defaults (the reward fit's
# and sample runs' library defaults; PPO's own, 16/16, are for smoke runs). `truncate_text` is the text of
# the one token that ends a response (at index >= truncate_after; "<eos>" = the tokenizer's end-of-text;
# "" = no rule): sample runs use it as is, reward fits and PPO as the token id of the base model's tokenizer
# (training.rlhf.task.truncate_token_of, in the worker: the web never loads a tokenizer).
# `query_format`: how a query's stored context becomes the model's input, "{context}" standing for it (e.g.
# "{context}\n\nTL;DR:" for summaries of imported posts); one template for every run that samples or scores.
TASK_DEFAULTS = {"query_length": 64, "response_length": 24, "temperature": 1.0, "truncate_text": "",
                 "truncate_after": 0, "query_format": "{context}"}
CONTEXT = "{context}"
# What the library's configs (RewardFitConfig, PPOConfig) take as they are; the rest is the run's product["task"].
LIBRARY_TASK_KEYS = ("query_length", "response_length", "temperature", "truncate_after")


# What a run of each kind uses where its config is silent: the library's defaults (RewardFitConfig,
# PPOConfig, the sample run's DEFAULTS; tests/training/services/test_task.py holds them equal).
LIBRARY_DEFAULTS = {
    "fit_reward": {"query_length": 64, "response_length": 24, "temperature": 1.0, "truncate_text": "",
                   "truncate_after": 0, "query_format": CONTEXT},
    "ppo": {"query_length": 16, "response_length": 16, "temperature": 1.0, "truncate_text": "", "truncate_after": 0,
            "query_format": CONTEXT},
    "sample": {"query_length": 64, "response_length": 24, "temperature": 1.0, "truncate_text": "",
               "truncate_after": 0, "query_format": CONTEXT},
}


def task_of(config: dict, defaults: dict | None = None) -> dict:
    """A config's task fields: its own where it sets them, else `defaults`, else TASK_DEFAULTS."""
    base = {**TASK_DEFAULTS, **{k: v for k, v in (defaults or {}).items() if k in TASK_DEFAULTS}}
    return {key: config.get(key, base[key]) for key in TASK_DEFAULTS}


def task_fill(config: dict, task: dict | None = None, *, library: bool = False) -> dict:
    """The section with every task field set (the round stores what each run will use); `library=True` for a
    reward or PPO section: only the keys its config takes (the run keeps the whole task in product["task"])."""
    filled = task_of(config, task)
    if library:
        filled = {key: value for key, value in filled.items() if key in LIBRARY_TASK_KEYS}
    return {**config, **filled}


def query_format(context: str, task: dict | None) -> str:
    """The model's input for a stored context under the task's query_format (plain replacement: braces in the
    context are text, never format fields)."""
    template = (task or {}).get("query_format") or CONTEXT
    return template.replace(CONTEXT, context)


def formatted(records: list, task: dict | None) -> list:
    """Library Comparison records with each query under the task's query_format."""
    import dataclasses

    if ((task or {}).get("query_format") or CONTEXT) == CONTEXT:
        return records
    return [dataclasses.replace(record, query=query_format(record.query, task)) for record in records]


def run_task(run) -> dict:
    """The task a run was created for: its config's fields, then what its product recorded (reward fits and
    PPO keep truncate_text there), then its kind's library defaults."""
    return task_of({**(run.product or {}).get("task", {}), **(run.config or {})}, LIBRARY_DEFAULTS.get(run.kind))


def conflicts(tasks: dict[str, dict]) -> list[str]:
    """'reward.response_length = 16, ppo.response_length = 8' for each task field the named tasks
    disagree on (empty when they agree)."""
    found = []
    for key in TASK_DEFAULTS:
        values = {name: task[key] for name, task in tasks.items()}
        if len(set(values.values())) > 1:
            found.append(", ".join(f"{name}.{key} = {value!r}" if isinstance(value, str) else f"{name}.{key} = {value}"
                                   for name, value in values.items()))
    return found


def task_conflicts(sections: dict[str, dict], task: dict | None = None) -> list[str]:
    """The round's check: the sections' task fields, each filled from the project's task."""
    return conflicts({name: task_of(config, task) for name, config in sections.items()})


def run_task_conflicts(*, kind: str, config: dict, product: dict | None = None, reward_run=None,
                       policy_run=None) -> list[str]:
    """A run started against another run's reward model or policy: their task fields must agree (a
    round's runs always do, being filled from one task)."""
    own = {**(product or {}).get("task", {}), **config}
    tasks = {f"this {kind} run": task_of(own, LIBRARY_DEFAULTS.get(kind))}
    for other in (reward_run, policy_run):
        if other is not None:
            tasks[f"run {other.id} ({other.kind})"] = run_task(other)
    return conflicts(tasks) if len(tasks) > 1 else []


def task_errors(task: dict | None) -> list[str]:
    """What is wrong with a project's task section itself (unknown keys, values out of range)."""
    task = task or {}
    errors = [f"unknown task field {key!r} (known: {', '.join(TASK_DEFAULTS)})" for key in task
              if key not in TASK_DEFAULTS]
    for key in ("query_length", "response_length"):
        value = task.get(key, TASK_DEFAULTS[key])
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(f"{key} must be a whole number ≥ 1")
    temperature = task.get("temperature", TASK_DEFAULTS["temperature"])
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature <= 0:
        errors.append("temperature must be a number > 0 (greedy samples for people: the sample section's greedy)")
    text = task.get("truncate_text", "")
    if not isinstance(text, str) or len(text) > 32:
        errors.append("truncate_text must be a short text (one token of the base model's tokenizer, or <eos>)")
    after, length = task.get("truncate_after", 0), task.get("response_length", TASK_DEFAULTS["response_length"])
    if not isinstance(after, int) or isinstance(after, bool) or after < 0 or (isinstance(length, int)
                                                                             and after >= length):
        errors.append("truncate_after must be a whole number from 0 to response_length − 1")
    template = task.get("query_format", CONTEXT)
    if not isinstance(template, str) or template.count(CONTEXT) != 1 or len(template) > 2000:
        errors.append("query_format must hold {context} exactly once (e.g. \"{context}\\n\\nTL;DR:\")")
    return errors


def section_truncation_errors(sections: dict[str, dict]) -> list[str]:
    """A reward or PPO section must not set its own truncate_token: the task's truncate_text is the one rule."""
    return [f"{name}.truncate_token is set: set the task's truncate_text instead (one rule for every run)"
            for name in ("reward", "ppo") if sections.get(name, {}).get("truncate_token") is not None]
