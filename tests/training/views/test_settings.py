"""The training settings page (a form generated from the configs, presets) and its JSON view."""
import json

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Project

pytestmark = pytest.mark.django_db


def _url(project, name="training-settings"):
    return reverse(name, kwargs={"slug": project.slug})


def _stored(project):
    return Project.objects.get(id=project.id).training_settings


def _defaults_posted(client, project, **changes):
    """The page's form as a browser posts it untouched (checkboxes and selects included), with `changes`."""
    form = client.get(_url(project)).context["form"]
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, "")
        if getattr(field.widget, "input_type", "") == "checkbox":
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    data.update(changes)
    return data


def test_page_shows_each_field_with_its_help_default_and_section(client, researcher, project):
    client.force_login(researcher)
    response = client.get(_url(project))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="ppo__kl_coef"' in html and 'placeholder="0.2"' in html
    assert "beta (the initial beta when adaptive)" in html  # the library's comment beside kl_coef
    assert '<select name="reward__precision"' in html and 'value="bf16-mixed"' in html
    assert 'type="checkbox" name="ppo__adaptive_kl"' in html
    for hidden in ("reward__output_dir", "ppo__checkpoint_dir", "ppo__device", "ppo__extra"):
        assert f'name="{hidden}"' not in html
    assert "<script>" not in html.replace('<script src=', '')


def test_a_valid_save_stores_only_the_fields_that_differ_from_their_default(client, researcher, project):
    client.force_login(researcher)
    data = _defaults_posted(client, project, ppo__kl_coef="0.05", reward__lr_schedule="cosine",
                            task__response_length="48", action="save")
    response = client.post(_url(project), data)
    assert response.status_code == 302 and response["Location"].endswith("?saved=1")
    assert _stored(project) == {"ppo": {"kl_coef": 0.05}, "reward": {"lr_schedule": "cosine"},
                                "task": {"response_length": 48}}
    page = client.get(response["Location"]).content.decode()
    assert "Saved." in page and 'value="0.05"' in page


def test_errors_show_beside_their_fields_and_nothing_is_saved(client, researcher, project):
    project.training_settings = {"ppo": {"lr": 1e-4}}
    project.save()
    client.force_login(researcher)
    data = _defaults_posted(client, project, ppo__lam="2", more='{"ppo": {"kl_coeff": 0.1}}', action="save")
    response = client.post(_url(project), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["ppo__lam"] == ["lam must be in [0, 1], got 2.0"]
    # The misspelt key: beside the JSON box it came from, and beside the field it meant.
    assert "did you mean 'kl_coef'" in form.errors["more"][0]
    assert "did you mean 'kl_coef'" in form.errors["ppo__kl_coef"][0]
    html = response.content.decode()
    assert 'id="id_ppo__lam_error"' in html and 'id="id_ppo__kl_coef_error"' in html
    assert _stored(project) == {"ppo": {"lr": 1e-4}}


def test_a_value_that_is_not_a_number_is_a_field_error(client, researcher, project):
    client.force_login(researcher)
    response = client.post(_url(project), _defaults_posted(client, project, ppo__total_episodes="many"))
    assert response.status_code == 400 and "ppo__total_episodes" in response.context["form"].errors
    assert _stored(project) == {}


def test_settings_without_a_field_travel_in_the_json_box(client, researcher, project):
    project.training_settings = {"reward": {"query_length": 64}, "ppo": {"publish_every": 2, "online_sample": {}}}
    project.save()
    client.force_login(researcher)
    form = client.get(_url(project)).context["form"]
    assert json.loads(form.initial["more"]) == {"reward": {"query_length": 64}, "ppo": {"online_sample": {}}}
    assert form.initial["ppo__publish_every"] == 2
    assert client.post(_url(project), _defaults_posted(client, project)).status_code == 302
    assert _stored(project) == project.training_settings  # an untouched save keeps every key


def test_a_preset_fills_the_form_with_its_sources_and_saves_nothing(client, researcher, project):
    client.force_login(researcher)
    data = _defaults_posted(client, project, ppo__total_episodes="512", action="preset", preset="2019")
    response = client.post(_url(project), data)
    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["ppo__kl_coef"] == 0.15 and form.initial["ppo__adaptive_kl"] is True
    assert form.initial["ppo__total_episodes"] == 512  # the researcher's unsaved edit is kept
    assert "§2.5: beta starts at 0.15 for books" in response.content.decode()
    assert _stored(project) == {}
    # Saving the filled form stores the preset's non-default values.
    saved = client.post(_url(project), {**_defaults_posted(client, project), **{
        k: ("on" if v is True else v) for k, v in form.initial.items() if v is not False and v is not None}})
    assert saved.status_code == 302, saved.context["form"].errors
    assert _stored(project)["ppo"]["kl_coef"] == 0.15 and _stored(project)["ppo"]["total_episodes"] == 512


def test_json_view_saves_valid_settings_and_lists_errors_by_field(client, researcher, project):
    client.force_login(researcher)
    url = _url(project, "training-settings-json")
    page = client.get(url)
    assert page.status_code == 200 and b'id="settings-json"' in page.content
    bad = client.post(url, {"settings": json.dumps({"ppo": {"kl_coeff": 0.1, "lam": 2}})})
    html = bad.content.decode()
    assert bad.status_code == 400 and "<code>ppo.kl_coeff</code>" in html and "did you mean &#x27;kl_coef&#x27;" in html
    assert "<code>ppo.lam</code>" in html
    assert _stored(project) == {}
    broken = client.post(url, {"settings": "{nope"})
    assert broken.status_code == 400 and b"Not valid JSON" in broken.content
    good = {"ppo": {"kl_coef": 0.1}, "seed": 3}
    assert client.post(url, {"settings": json.dumps(good)}).status_code == 302
    assert _stored(project) == good


def test_contractors_get_403_on_every_settings_page_and_action(client, contractor, project):
    client.force_login(contractor)
    for name in ("training-settings", "training-settings-json"):
        assert client.get(_url(project, name)).status_code == 403
        assert client.post(_url(project, name), {"settings": "{}", "action": "save"}).status_code == 403
    assert _stored(project) == {}


def test_posts_need_the_csrf_token(researcher, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    for name in ("training-settings", "training-settings-json"):
        assert client.post(_url(project, name), {"settings": "{}"}).status_code == 403
    page = client.get(_url(project))
    assert b'name="csrfmiddlewaretoken"' in page.content


def test_a_stored_value_outside_a_select_s_choices_is_kept_and_named(client, researcher, project):
    project.training_settings = {"reward": {"precision": "fp8"}}
    project.save()
    client.force_login(researcher)
    page = client.get(_url(project)).content.decode()
    assert '<option value="fp8" selected>fp8</option>' in page  # shown as stored, not the first option
    response = client.post(_url(project), _defaults_posted(client, project))
    assert response.status_code == 400 and "precision must be one of" in response.context["form"].errors[
        "reward__precision"][0]


def test_gpus_has_a_field_per_run_and_more_than_the_workers_have_is_refused_beside_it(client, researcher, project,
                                                                                      settings):
    settings.TRAINING_WORKER_GPUS = 2
    client.force_login(researcher)
    html = client.get(_url(project)).content.decode()
    assert 'name="ppo__gpus"' in html and 'name="reward__gpus"' in html and "torchrun" in html
    response = client.post(_url(project), _defaults_posted(client, project, ppo__gpus="3", action="save"))
    assert response.status_code == 400
    assert response.context["form"].errors["ppo__gpus"] == [
        "gpus must be a whole number from 1 to 2 (the GPUs a training worker has, TRAINING_WORKER_GPUS), got 3"]
    assert _stored(project) == {}
    saved = client.post(_url(project), _defaults_posted(client, project, ppo__gpus="2", reward__gpus="2",
                                                        ppo__strategy="fsdp", action="save"))
    assert saved.status_code == 302
    assert _stored(project) == {"ppo": {"gpus": 2, "strategy": "fsdp"}, "reward": {"gpus": 2}}
