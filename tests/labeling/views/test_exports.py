"""The researcher's export page: a GET form whose filters count the matching labels (full page, or the
htmx partial as a field changes), a streamed download that imports back into a fresh project, field
errors for bad filters (never a 500, never a file), and 403 for contractors."""
import json
import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Comparison, Label, Query
from labeling.services import comparisons_import, instructions_publish
from tests.factories import ProjectFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


def _url(name, project, **params):
    url = reverse(name, kwargs={"slug": project.slug})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def _labels(project, contractor, other_contractor, researcher):
    """Five answered labels (one on a calibration comparison, two in May 2024 on valid) and one skipped."""
    made = []
    for i, labeler in enumerate([contractor, other_contractor, contractor, other_contractor]):
        comparison = make_comparison(project, texts=[f"c{i} s{j}" for j in range(project.k)])
        if i < 2:
            Query.objects.filter(id=comparison.query_id).update(split="valid")
        made.append(make_label(comparison, labeler, chosen_index=i % project.k))
    made.append(make_label(make_comparison(project, is_calibration=True), researcher, chosen_index=0))
    make_label(make_comparison(project), contractor, chosen_index=None, skip_reason="unreadable")
    may = datetime(2024, 5, 2, 12, tzinfo=dt_timezone.utc)
    Label.objects.filter(id__in=[made[0].id, made[1].id]).update(created_at=may)
    return made


def _count(response) -> str:
    return re.search(r'<p id="export-count"[^>]*>(.*?)</p>', response.content.decode(), re.S).group(1)


def _field_error(response, field) -> str:
    match = re.search(rf'<p class="notice notice-error" role="alert" id="id_{field}-error">(.*?)</p>',
                      response.content.decode(), re.S)
    return match.group(1) if match else ""


# ---------------------------------------------------------------- the page


def test_page_counts_every_answered_label_by_default(client, researcher, project, contractor, other_contractor):
    _labels(project, contractor, other_contractor, researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-export", project))
    assert response.status_code == 200
    assert "<strong>5 labels match</strong>" in _count(response)
    body = response.content.decode()
    assert "<html" in body and 'id="export-form"' in body
    assert re.search(r'<select name="layout"[^>]*autofocus', body)


def test_each_filter_narrows_the_count(client, researcher, project, contractor, other_contractor):
    _labels(project, contractor, other_contractor, researcher)
    v1 = instructions_publish(project=project, body="Pick one.", author=researcher)
    make_label(make_comparison(project), other_contractor, chosen_index=3, instructions=v1)
    client.force_login(researcher)
    expected = {
        (("split", "valid"),): "2 labels match",
        (("created_from", "2024-05-01"), ("created_to", "2024-05-02")): "2 labels match",
        (("instructions_version", "1"),): "1 label matches",
        (("labeler_kind", "people"),): "6 labels match",
        (("labeler_kind", "simulated"),): "0 labels match",
        (("calibration", "exclude"),): "5 labels match",
        (("calibration", "only"),): "1 label matches",
        (("split", "valid"), ("calibration", "only")): "0 labels match",
    }
    for params, text in expected.items():
        response = client.get(_url("labeling-export", project, **dict(params)))
        assert response.status_code == 200, params
        assert f"<strong>{text}</strong>" in _count(response), params


def test_pairs_layout_also_counts_lines(client, researcher, project, contractor, other_contractor):
    _labels(project, contractor, other_contractor, researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-export", project, layout="pairs", split="valid"))
    assert "<strong>2 labels match</strong> (6 lines)" in _count(response)


def test_htmx_change_renders_the_form_partial_only(client, researcher, project, contractor, other_contractor):
    """As a field changes htmx swaps the count and the fields' error slots, never the fields themselves."""
    _labels(project, contractor, other_contractor, researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-export", project, split="valid"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="export-summary">') and "<html" not in body
    assert "<select" not in body and "<input" not in body  # the fields stay as the user left them
    assert body.count('hx-swap-oob="true"') == 7  # every field's error slot, emptied or filled
    assert "<strong>2 labels match</strong>" in _count(response)
    assert "HX-Request" in response["Vary"]


def test_page_links_share_the_filters(client, researcher, project):
    client.force_login(researcher)
    response = client.get(_url("labeling-export", project, layout="pairs", split="test", labeler_kind="people"))
    body = response.content.decode()
    assert f'href="{_url("labeling-export", project)}?layout=pairs&amp;split=test&amp;labeler_kind=people"' in body
    assert f'href="{_url("labeling-export-download", project)}?layout=pairs&amp;split=test&amp;labeler_kind=people"' in body
    assert '<option value="pairs" selected>' in body and '<option value="test" selected>' in body


# ---------------------------------------------------------------- bad filters


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"created_from": "2024-05-03", "created_to": "2024-05-01"}, "created_to",
     "The date range ends (2024-05-01) before it starts (2024-05-03)."),
    ({"created_from": "2024-13-01"}, "created_from", "Enter a valid date."),
    ({"layout": "xml"}, "layout", "Select a valid choice. xml is not one of the available choices."),
    ({"layout": "2020"}, "layout", "The 2020 layout holds pairs; project"),
    ({"instructions_version": "7"}, "instructions_version", "Select a valid choice. 7 is not one of"),
    ({"labeler_kind": "robots"}, "labeler_kind", "Select a valid choice."),
    ({"split": "dev"}, "split", "Select a valid choice."),
])
def test_bad_filters_give_field_errors(client, researcher, project, params, field, message):
    client.force_login(researcher)
    page = client.get(_url("labeling-export", project, **params))
    assert page.status_code == 400
    assert message.replace("'", "&#x27;") in _field_error(page, field)
    assert f'aria-describedby="id_{field}-error"' in page.content.decode()
    assert "Correct the fields marked above" in _count(page)
    download = client.get(_url("labeling-export-download", project, **params))
    assert download.status_code == 400
    assert "Content-Disposition" not in download
    assert message.replace("'", "&#x27;") in _field_error(download, field)
    partial = client.get(_url("labeling-export", project, **params), HTTP_HX_REQUEST="true")
    assert partial.status_code == 400 and message.replace("'", "&#x27;") in _field_error(partial, field)


def test_every_bad_field_is_named_at_once_and_autofocused_first(client, researcher, project):
    client.force_login(researcher)
    response = client.get(_url("labeling-export", project, layout="2020", created_from="2024-05-03",
                               created_to="2024-05-01"))
    assert response.status_code == 400
    assert "K=4" in _field_error(response, "layout")
    assert "before it starts" in _field_error(response, "created_to")
    assert re.search(r'<select name="layout"[^>]*autofocus', response.content.decode())


# ---------------------------------------------------------------- download


def test_download_streams_the_filtered_file_named_by_slug_layout_and_date(client, researcher, project, contractor,
                                                                          other_contractor):
    made = _labels(project, contractor, other_contractor, researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-export-download", project, split="valid", calibration="exclude"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}-labels-2019-{today}.jsonl"'
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["comparison_id"], r["best"], r["labeler"]) for r in rows] == [
        (made[0].comparison_id, 0, contractor.username), (made[1].comparison_id, 1, other_contractor.username)]


def test_download_2020_layout_for_a_pairs_project(client, researcher, contractor):
    project = ProjectFactory(k=2)
    make_label(make_comparison(project, texts=["left", "right"]), contractor, chosen_index=1)
    client.force_login(researcher)
    response = client.get(_url("labeling-export-download", project, layout="2020"))
    assert response.status_code == 200
    assert f'{project.slug}-labels-2020-' in response["Content-Disposition"]
    (row,) = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert (row["choice"], row["worker"], [s["text"] for s in row["summaries"]]) == (1, "contractor1", ["left", "right"])


def test_downloaded_file_imports_back_into_a_fresh_project_with_the_same_labels(client, researcher, project, contractor,
                                                                                other_contractor):
    _labels(project, contractor, other_contractor, researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-export-download", project, calibration="exclude"))
    first = b"".join(response.streaming_content)

    fresh = ProjectFactory(k=4)
    result = comparisons_import(project=fresh, source=first, labelers_existing=[contractor.username,
                                                                                 other_contractor.username])
    assert (result.comparisons_created, result.labels_created) == (4, 4)
    again = client.get(_url("labeling-export-download", fresh, calibration="exclude"))
    second = b"".join(again.streaming_content)

    def core(data):
        return [(r["query"], [r[f"sample{i}"] for i in range(4)], r["best"], r["labeler"], r["split"], r["unsure"])
                for r in map(json.loads, data.decode().splitlines())]

    assert core(second) == core(first)
    assert len(core(first)) == 4
    assert set(Label.objects.filter(comparison__project=fresh).values_list("source_import", flat=True)) == {
        result.import_id}
    assert Comparison.objects.filter(project=fresh, is_calibration=True).count() == 0


# ---------------------------------------------------------------- who may


def test_contractors_get_403_on_the_page_and_the_download(client, contractor, project):
    make_label(make_comparison(project), contractor, chosen_index=0)
    client.force_login(contractor)
    assert client.get(_url("labeling-export", project)).status_code == 403
    assert client.get(_url("labeling-export", project), HTTP_HX_REQUEST="true").status_code == 403
    response = client.get(_url("labeling-export-download", project))
    assert response.status_code == 403 and not response.streaming


def test_anonymous_users_are_sent_to_log_in(client, project):
    response = client.get(_url("labeling-export-download", project))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_unknown_project_is_404_for_researchers(client, researcher):
    client.force_login(researcher)
    assert client.get(reverse("labeling-export", kwargs={"slug": "nope"})).status_code == 404


def test_only_get(client, researcher, project):
    client.force_login(researcher)
    assert client.post(_url("labeling-export-download", project)).status_code == 405


def test_home_links_researchers_to_each_projects_export(client, researcher, contractor, project):
    client.force_login(researcher)
    assert f'href="{_url("labeling-export", project)}"' in client.get(reverse("home")).content.decode()
    client.force_login(contractor)
    assert _url("labeling-export", project) not in client.get(reverse("home")).content.decode()
