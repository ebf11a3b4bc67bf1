"""Training settings: checked field by field as a round checks them, saved whole or not at all."""
import json

import pytest

from labeling.errors import Forbidden
from labeling.models import Project
from labeling.services.demo import DEMO_TRAINING
from training.forms import TrainingSettingsForm, dict_comments, field_comments, fields_by_key
from training.models import TrainingRun
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.rlhf.presets import PRESETS
from training.services import SettingsInvalid, base_model_check, training_settings_errors, training_settings_save
from training.services import settings as settings_service
from training.services.task import TASK_DEFAULTS
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_a_misspelt_key_is_refused_with_the_field_it_meant():
    errors = training_settings_errors({"ppo": {"kl_coeff": 0.1}})
    assert errors == {"ppo.kl_coeff": ["unknown field 'kl_coeff' (did you mean 'kl_coef'?)"]}


def test_unknown_sections_and_keys_of_every_section_are_refused():
    errors = training_settings_errors({"rewards": {}, "sample": {"n_querys": 3}, "tripwires": {"kl_maxx": 1.0},
                                       "task": {"response_lenght": 8}})
    assert errors["rewards"] == ["unknown section 'rewards' (did you mean 'reward'?)"]
    assert "did you mean 'n_queries'" in errors["sample.n_querys"][0]
    assert "did you mean 'kl_max'" in errors["tripwires.kl_maxx"][0]
    assert "did you mean 'response_length'" in errors["task.response_lenght"][0]


def test_out_of_range_and_wrong_type_values_are_named_by_field():
    errors = training_settings_errors({"ppo": {"lam": 2.0, "kl_coeff": 1}, "reward": {"epochs": "two"},
                                       "sample": {"max_tries": 99}, "seed": -1})
    assert errors["ppo.lam"] == ["lam must be in [0, 1], got 2.0"]  # reported beside a misspelt key of its section
    assert errors["reward.epochs"] == ["epochs must be a whole number, got 'two'"]
    assert errors["sample.max_tries"][0].startswith("max_tries must be a whole number from 1 to")
    assert "seed" in errors


def test_a_task_error_is_blamed_on_the_task_and_a_section_repeating_it_differently_on_the_section():
    errors = training_settings_errors({"task": {"response_length": 16, "truncate_after": 20},
                                       "reward": {"response_length": 24}})
    assert "task.truncate_after" in errors
    assert not any(key.startswith("ppo.") for key in errors)  # the task's mistake, not PPO's
    errors = training_settings_errors({"task": {"response_length": 16}, "reward": {"response_length": 24}})
    assert list(errors) == ["reward.response_length"]
    assert "task.response_length = 16, reward.response_length = 24" in errors["reward.response_length"][0]


def test_product_keys_belong_to_ppo_and_online_sample_is_checked_as_a_sample_section():
    errors = training_settings_errors({"sample": {"publish_every": 2},
                                       "ppo": {"publish_every": -1, "online_sample": {"max_tries": 0}}})
    assert "sample.publish_every" in errors and "ppo.publish_every" in errors
    assert errors["ppo.online_sample"][0].startswith("max_tries must be a whole number")


def test_paths_the_worker_sets_are_refused():
    errors = training_settings_errors({"reward": {"output_dir": "/tmp/x"}, "ppo": {"checkpoint_dir": "/tmp/y"}})
    assert set(errors) == {"reward.output_dir", "ppo.checkpoint_dir"}


def test_the_demo_settings_and_the_2019_preset_are_valid():
    assert training_settings_errors(DEMO_TRAINING) == {}
    assert training_settings_errors(PRESETS["2019"].settings()) == {}
    assert training_settings_errors({}) == {}


def test_save_refuses_and_writes_nothing_on_any_error(project, researcher):
    project.training_settings = {"ppo": {"lr": 1e-4}}
    project.save()
    with pytest.raises(SettingsInvalid) as caught:
        training_settings_save(project=project, settings={"ppo": {"lr": 2e-4, "kl_coeff": 0.1}}, user=researcher)
    assert caught.value.status_code == 400 and "ppo.kl_coeff" in caught.value.errors
    assert Project.objects.get(id=project.id).training_settings == {"ppo": {"lr": 1e-4}}
    training_settings_save(project=project, settings={"ppo": {"lr": 2e-4}}, user=researcher)
    assert Project.objects.get(id=project.id).training_settings == {"ppo": {"lr": 2e-4}}


def test_contractors_cannot_save(project, contractor):
    with pytest.raises(Forbidden):
        training_settings_save(project=project, settings={}, user=contractor)


# ---------------------------------------------------------------- base model check


def test_base_model_tiny_and_seeded_tiny_are_fine():
    assert base_model_check("tiny") is None and base_model_check("tiny:7") is None
    assert "whole number" in base_model_check("tiny:x")


def test_base_model_folder_must_exist_hold_a_config_and_a_tokenizer(tmp_path):
    missing = tmp_path / "nope"
    assert "no folder" in base_model_check(str(missing))
    folder = tmp_path / "model"
    folder.mkdir()
    assert "no config.json" in base_model_check(str(folder))
    (folder / "config.json").write_text("{not json")
    assert "does not parse" in base_model_check(str(folder))
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert "no tokenizer" in base_model_check(str(folder))
    (folder / "tokenizer.json").write_text("{}")
    assert base_model_check(str(folder)) is None
    assert training_settings_errors({"base_model": str(missing)})["base_model"][0].startswith("no folder")


def test_a_ppo_checkpoint_folder_is_checked_at_its_policy(tmp_path):
    policy = tmp_path / "step-3" / "policy"
    policy.mkdir(parents=True)
    (policy / "rlhf_model.json").write_text('{"kind": "policy"}')
    (policy / "config.json").write_text("{}")
    (policy / "byte_tokenizer.json").write_text("{}")
    assert base_model_check(str(tmp_path / "step-3")) is None


def test_a_hub_id_must_be_in_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert "workers have no network" in base_model_check("gpt2")
    snapshot = tmp_path / "hub" / "models--openai-community--gpt2" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert base_model_check("openai-community/gpt2") is None


def test_the_file_names_are_those_the_workers_load():
    from training.rlhf import models, tokenizer

    assert settings_service.BYTE_TOKENIZER_FILE == tokenizer.BYTE_TOKENIZER_FILE
    assert settings_service.CHECKPOINT_POLICY_DIR == models.CHECKPOINT_POLICY_DIR
    assert settings_service.META_FILE == models.META_FILE and settings_service.TINY == models.TINY
    assert {k for keys in settings_service.SECTION_PRODUCT_KEYS.values() for k in keys} <= set(TrainingRun.PRODUCT_KEYS)


# ---------------------------------------------------------------- the generated form


def test_help_text_is_the_comment_beside_each_field():
    assert field_comments(PPOConfig)["kl_coef"] == "beta (the initial beta when adaptive)"
    # a comment block above the field and a statement over several lines
    assert field_comments(RewardFitConfig)["normalize_before"].startswith("Before training (2019 `normalize_before`")
    assert field_comments(PPOConfig)["value_model"].startswith('"shared": zero-init head')
    assert "validate" not in field_comments(PPOConfig)
    assert dict_comments("training.services.tripwires", "DEFAULTS")["kl_max"].startswith("nats;")


def test_the_form_is_generated_from_the_configs():
    fields = fields_by_key()
    assert fields["reward.precision"].kind == "choice" and "bf16-mixed" in fields["reward.precision"].choices
    assert fields["ppo.adaptive_kl"].kind == "bool" and fields["ppo.kl_target"].nullable
    assert fields["ppo.total_episodes"].kind == "int" and fields["ppo.lr"].kind == "float"
    assert set(TASK_DEFAULTS) == {f.name for f in fields.values() if f.section == "task"}
    for hidden in ("reward.output_dir", "ppo.checkpoint_dir", "ppo.device", "reward.model", "ppo.extra",
                   "reward.response_length", "sample.query_length"):
        assert hidden not in fields


def test_the_form_stores_only_values_that_differ_from_their_default():
    form = TrainingSettingsForm({"ppo__kl_coef": "0.2", "ppo__lr": "1e-4", "reward__precision": "fp32",
                                 "ppo__adaptive_kl": "on", "task__response_length": "", "ppo__whiten_rewards": "on",
                                 "reward__normalize_before": "on", "ppo__tf32": "on", "reward__tf32": "on",
                                 "more": '{"ppo": {"online_sample": {}}}'})
    assert form.is_valid(), form.errors
    assert form.settings() == {"ppo": {"online_sample": {}, "lr": 1e-4, "adaptive_kl": True}}


def test_the_json_box_may_not_set_a_field_of_the_form():
    form = TrainingSettingsForm({"more": '{"ppo": {"lam": 0.9}}'})
    assert not form.is_valid() and "ppo.lam has a field of its own" in form.errors["more"][0]


def test_both_presets_are_settings_the_page_saves():
    from training.rlhf.presets import PRESETS

    for preset in PRESETS.values():
        assert training_settings_errors(preset.settings()) == {}, preset.key
    assert training_settings_errors({"reward": {"stored_tokens": True}}) == {}
    assert "reward.stored_tokens" in training_settings_errors({"reward": {"stored_tokens": "yes"}})


def test_reward_terms_the_projects_labels_cannot_feed_are_refused_by_field(researcher):
    from training.services.settings import project_settings_errors

    plain = ProjectFactory(k=2)
    settings = {"reward": {"likert_axis": "overall", "likert_coef": 0.5, "acceptability_coef": 1.0}}
    errors = project_settings_errors(project=plain, settings=settings)
    assert set(errors) == {"reward.likert_axis", "reward.acceptability_coef"}
    assert "it has none" in errors["reward.likert_axis"][0]
    with pytest.raises(SettingsInvalid):
        training_settings_save(project=plain, settings=settings, user=researcher)
    assert Project.objects.get(id=plain.id).training_settings == plain.training_settings
    rated = ProjectFactory(k=2, likert_axes=["overall"], allow_none_acceptable=True)
    training_settings_save(project=rated, settings=settings, user=researcher)
    assert Project.objects.get(id=rated.id).training_settings == settings
