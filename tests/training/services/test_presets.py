"""The "2019 faithful" and "2020 faithful" presets (training/rlhf/presets.py) are settings a round accepts: every
field known to its section, every value valid, each with its source, and the 2019 one without a held-out share."""
import pytest

from training.rlhf.config import PPOConfig, RewardFitConfig, config_from_dict
from training.rlhf.presets import PRESETS
from training.services.sampling import DEFAULTS as SAMPLE_DEFAULTS
from training.services.sampling import sample_config_errors
from training.services.task import TASK_DEFAULTS, task_conflicts, task_errors, task_fill


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_a_preset_is_valid_settings_with_a_source_for_every_field(key):
    preset = PRESETS[key]
    settings = preset.settings()
    assert set(settings) <= {"task", "reward", "ppo", "sample"}
    task = settings["task"]
    assert set(task) <= set(TASK_DEFAULTS) and task_errors(task) == []
    config_from_dict(RewardFitConfig, task_fill(settings["reward"], task, library=True)).validate()
    # A round's PPO run optimises the round's reward model (a folder), which a separate value model copies.
    config_from_dict(PPOConfig, {**task_fill(settings["ppo"], task, library=True), "reward": "/rm"}).validate()
    sample = task_fill(settings["sample"], task)
    assert set(sample) <= set(SAMPLE_DEFAULTS) and sample_config_errors(sample) == []
    assert task_conflicts({name: settings.get(name, {}) for name in ("reward", "ppo", "sample")}, task) == []
    sources = preset.sources()
    assert set(sources) == {f"{section}.{field}" for section, values in settings.items() for field in values}
    assert all(source.strip() for source in sources.values())


def test_the_papers_differ_where_the_algorithms_notes_say():
    p19, p20 = PRESETS["2019"].settings(), PRESETS["2020"].settings()
    assert p19["reward"]["valid_fraction"] == 0.0  # no held-out share in 2019
    assert (p19["task"]["truncate_text"], p19["task"]["truncate_after"], p19["task"]["response_length"]) == (".", 16, 24)
    assert (p19["ppo"]["value_model"], p19["ppo"]["adaptive_kl"], p19["ppo"]["kl_target"]) == ("shared", True, 6.0)
    assert (p20["task"]["truncate_text"], p20["reward"]["readout"], p20["ppo"]["value_model"]) == (
        "<eos>", "eot", "separate")
    assert (p20["sample"]["greedy"], p20["reward"]["lr_schedule"], p20["ppo"]["kl_coef"]) == (True, "cosine", 0.05)
