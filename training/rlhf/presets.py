"""Presets: the settings of a paper's setup, field by field, with where each value comes from.

A preset fills a project's training settings (sections "task", "reward", "ppo", "sample"); the
researcher's settings page offers them, and what a preset sets can still be changed field by field.
Sizes that only say how much compute a run spends (total_episodes, normalize_samples) stay the
project's own: the papers' (1M episodes, 512-row batches) do not fit a first try. Sources are the
section numbers of ../shared/ALGORITHMS.md, which cites the code and papers ([C19] lm-human-preferences
`launch.py` books configs, [P20] "Learning to summarize from human feedback" App. B.1).

Torch-free: web processes read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    summary: str
    # section -> field -> (value, source)
    fields: dict[str, dict[str, tuple[object, str]]]

    def settings(self) -> dict[str, dict]:
        """The sections as training settings (values only)."""
        return {section: {name: value for name, (value, _) in values.items()}
                for section, values in self.fields.items()}

    def sources(self) -> dict[str, str]:
        """"section.field" -> where the value comes from (help text beside the field)."""
        return {f"{section}.{name}": source for section, values in self.fields.items()
                for name, (_, source) in values.items()}


PRESET_2019 = Preset(
    key="2019",
    title="2019 faithful",
    summary="Ziegler et al. 2019, books style tasks (sentiment, descriptiveness): best-of-4, a period between "
            "tokens 16 and 24, shared value head, adaptive KL; no held-out share (2019 had none).",
    fields={
        "task": {
            "query_length": (64, "§2.11: books contexts cut to 64 tokens"),
            "response_length": (24, "§2.3: Lr = 24 for books"),
            "temperature": (0.7, "§2.2 / §2.10: T = 0.7 for books, applied to pi, pi_old and rho"),
            "truncate_text": (".", "§2.3: truncate_token 13 ('.') for books"),
            "truncate_after": (16, "§2.3: the period must be at 0-based index 16–23"),
        },
        "reward": {
            "batch_size": (32, "§1.5: launch.py books, 32 over ranks"),
            "lr": (5e-5, "§1.5: launch.py books"),
            "lr_schedule": ("linear", "§1.5: linear to 0 over one pass"),
            "epochs": (1, "§1.5: each label used once"),
            "adam_style": ("tf", "§2.12: TF Adam epsilon semantics"),
            "valid_fraction": (0.0, "§1.5: no validation set or early stopping in the 2019 code"),
            "normalize_before": (True, "§1.4: normalize_before on in the launched configs"),
            "normalize": ("samples", "§1.4: normalize_after: mean 0, std 1 on rho samples"),
            "readout": ("last", "§1.1: the head at the last token"),
        },
        "ppo": {
            "lr": (1e-5, "§2.10: launch.py books"),
            "noptepochs": (4, "§2.10"),
            "nminibatches": (1, "§2.10"),
            "cliprange": (0.2, "§2.10"),
            "cliprange_value": (0.2, "§2.10"),
            "vf_coef": (0.1, "§2.10"),
            "gamma": (1.0, "§2.10"),
            "lam": (0.95, "§2.10"),
            "whiten_rewards": (True, "§2.7 / §2.10: books whiten rewards"),
            "kl_coef": (0.15, "§2.5: beta starts at 0.15 for books"),
            "adaptive_kl": (True, "§2.5: adaptive for books"),
            "kl_target": (6.0, "§2.5: target 6 nats"),
            "kl_horizon": (10000, "§2.5: horizon 10k episodes"),
            "value_model": ("shared", "§2.6: value head on the policy trunk"),
            "penalty_reward_value": (-1.0, "§2.3: responses without the period score -1"),
            "adam_style": ("tf", "§2.12"),
        },
        "sample": {
            "max_tries": (4, "§2.3: rejection sampling; people only see responses that pass the rule"),
            "greedy": (False, "§2.2: plain categorical sampling at the task's temperature"),
        },
    },
)

PRESET_2020 = Preset(
    key="2020",
    title="2020 faithful",
    summary="Stiennon et al. 2020, TL;DR: pairs, responses end at the first end-of-text, reward read at that "
            "token, separate value model, fixed KL 0.05, cosine reward schedule, greedy samples for people.",
    fields={
        "task": {
            "query_length": (512, "§2.11: 2020 TL;DR queries, 512 tokens"),
            "response_length": (48, "§2.3: Lr = 48"),
            "temperature": (1.0, "§2.10: PPO samples at T = 1 (evaluation at T = 0, see sample.greedy)"),
            "truncate_text": ("<eos>", "§2.3: truncated at the first end-of-text (the tokenizer's eos), no minimum index"),
            "truncate_after": (0, "§2.3: no minimum length in code"),
        },
        "reward": {
            "batch_size": (64, "§1.5: P20 App. B.1"),
            "lr": (1.5e-5, "§1.5: 1.3B model"),
            "lr_schedule": ("cosine", "§1.5: cosine decay, one epoch"),
            "epochs": (1, "§1.5"),
            "adam_style": ("torch", "§1.5: Adam"),
            "normalize_before": (False, "§1.4: 2020 trains from gain 1, bias 0"),
            "normalize": ("references", "§1.4: shifted so reference summaries average 0"),
            "readout": ("eot", "§1.2: the reward is read at the end-of-text token appended to the response"),
        },
        "ppo": {
            "lr": (1.5e-5, "§2.10: 1.3B model, linear decay"),
            "noptepochs": (4, "§2.10"),
            "gamma": (1.0, "§2.10"),
            "lam": (0.95, "§2.10"),
            "kl_coef": (0.05, "§2.10: beta = 0.05 fixed"),
            "adaptive_kl": (False, "§2.10"),
            "value_model": ("separate", "§2.6: a separate value network initialised from the reward model"),
            "adam_style": ("torch", "§2.10: Adam"),
        },
        "sample": {
            "greedy": (True, "§2.2: samples for people and evaluation at T = 0; each pair is the policy's "
                             "greedy response against the base's"),
            "base_share": (1.0, "greedy answers of one policy are all alike: every pair holds the base's"),
        },
    },
)

PRESETS: dict[str, Preset] = {preset.key: preset for preset in (PRESET_2019, PRESET_2020)}
