"""The researcher's path end to end (issue 17), in the browser and by keyboard where the pages allow it, with a
real Celery worker on the live server's database: create a K=2 project, import a 2020-layout file with two bad
lines (both named, nothing written), then a good file of labeled comparisons (big enough to run as a task with a
progress bar), edit the training settings (a misspelt key and an out-of-range value refused beside their
fields, then small fast settings and the "tiny" base saved), start a round, watch it finish, read the sample
run's policy-beside-base section, and export the labels: the file holds what was imported."""
import json
import re
import time
from pathlib import Path

import pytest

from labeling.models import Comparison, Import, Label, Project, Query
from labeling.roles import RESEARCHER
from tests.browser.helpers import login
from tests.factories import UserFactory
from tests.training.conftest import LiveWorker, _reset_connections
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, FAST_TASK
from training.models import BASE_POLICY_SOURCE, Round, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
N_LINES = 48  # over IMPORT_ASYNC_LINES below: a task imports them; enough train labels for a reward fit
WORKERS = ("w0", "w1", "w2")


@pytest.fixture
def worker(live_server, tmp_path, settings, monkeypatch):
    """A real worker process on the live server's database, a filesystem broker and this test's folders
    (VAR_DIR keeps the import page's uploads, ARTIFACTS_DIR the runs' checkpoints)."""
    from config.celery import app

    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")  # Celery prefers it over its configuration
    settings.VAR_DIR = tmp_path
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    worker = LiveWorker(tmp_path, extra_env={})
    saved = {k: app.conf.get(k) for k in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.conf.update(broker_url="filesystem://", broker_transport_options=worker.transport_options,
                    task_always_eager=False)
    _reset_connections(app)
    worker.start()
    yield worker
    worker.stop()
    app.conf.update(saved)
    _reset_connections(app)


def _press_link(page, href):
    page.locator(f"a[href='{href}']").first.focus()
    page.keyboard.press("Enter")


def _replace(page, selector, text):
    page.focus(selector)
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    if text:
        page.keyboard.type(text)


def _line(i: int, **extra) -> dict:
    """A 2020-layout comparison: the better summary has more 'z' (something a reward model can learn)."""
    good, bad = f"zz{'z' * (i % 5)} good {i}", f"aa{'a' * (i % 3)} bad {i}"
    summaries = [good, bad] if i % 2 == 0 else [bad, good]
    return {"info": {"id": f"post-{i}", "post": f"Post number {i}: <b>my</b> question?"},
            "summaries": [{"text": text, "policy": f"policy-{j}"} for j, text in enumerate(summaries)],
            "choice": i % 2, "worker": WORKERS[i % 3], "split": "train", **extra}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _wait_round_on_page(page, base, slug, worker, timeout=150.0) -> str:
    """Poll the rounds page until round 1 is no longer running; its status as shown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(f"{base}/training/projects/{slug}/runs/")
        badge = page.locator("h2:text-is('Rounds') ~ table tbody tr").first.locator(".badge")
        shown = badge.inner_text().strip().lower()
        if shown not in ("running", "queued", "pending"):
            return shown
        time.sleep(2)
    runs = {r.kind: (r.status, r.error[-800:]) for r in TrainingRun.objects.all()}
    raise AssertionError(f"round 1 did not end in {timeout}s: {runs}\n{worker.logs()[-3000:]}")


def test_the_researchers_path_from_a_new_project_to_an_export(live_server, page, worker, tmp_path, settings):
    settings.IMPORT_ASYNC_LINES = 10
    UserFactory(username="res", role=RESEARCHER)
    base = live_server.url
    started = time.monotonic()

    # 1. A new K=2 summarization project, by keyboard; it leads to its import page.
    login(page, base, "res")
    _press_link(page, "/projects/new/")
    page.wait_for_url(f"{base}/projects/new/")
    page.wait_for_load_state()
    # The page's script (slug from the name) and the autofocus are in place before the first key: under load
    # the first keystroke otherwise lands before either.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_name'")
    page.wait_for_load_state("networkidle")
    page.keyboard.type("Walk Through")
    assert page.input_value("#id_slug") == "walk-through"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("s")  # summarization
    page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    # label type, Likert axes, none acceptable, labels wanted, calibration share and labels, description, instructions
    for _ in range(8):
        page.keyboard.press("Tab")
    page.keyboard.type("Pick the better summary.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{base}/projects/walk-through/import/")
    project = Project.objects.get(slug="walk-through")
    assert (project.k, project.task_kind) == (2, "summarization")
    assert page.evaluate("document.activeElement.name") == "file"

    # 2. A file with two bad lines: each named with its number, nothing written.
    bad = _write(tmp_path / "bad.jsonl", [json.dumps(_line(0)), '{"info": {"id": "cut', json.dumps(_line(2)),
                                          json.dumps(_line(3, choice=5))])
    page.set_input_files("input[name=file]", str(bad))
    page.focus("#import-check")
    page.keyboard.press("Enter")
    errors = page.locator("#import-errors tr.import-error")
    errors.first.wait_for()
    assert errors.count() == 2
    assert errors.nth(0).inner_text().startswith("line 2")
    assert errors.nth(1).inner_text().startswith("line 4") and "5" in errors.nth(1).inner_text()
    assert page.locator("#import-confirm").count() == 0
    assert (Import.objects.count(), Query.objects.count(), Comparison.objects.count(), Label.objects.count()) == (
        0, 0, 0, 0)

    # 3. The good file: checked, then imported by the worker (over IMPORT_ASYNC_LINES) with a progress bar.
    lines = [_line(i) for i in range(N_LINES)]
    good = _write(tmp_path / "good.jsonl", [json.dumps(line) for line in lines])
    page.set_input_files("input[name=file]", str(good))
    page.focus("#import-check")
    page.keyboard.press("Enter")
    page.locator("#import-rows").wait_for()
    assert "post-1" in page.inner_text("#import-rows") or "Post number 1" in page.inner_text("#import-rows")
    page.focus("#import-submit")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/projects/walk-through/import/\d+/$"))
    summary = page.locator("#import-summary")
    summary.wait_for(timeout=90000)
    record = Import.objects.get()
    assert record.status == "done", (record.error, worker.logs()[-3000:])
    assert re.search(r"labeling\.tasks\.import_execute_task\[[^]]+\] succeeded", worker.logs())  # the worker's
    assert f"{N_LINES} lines imported" in summary.inner_text()
    assert f"{N_LINES} comparisons, {N_LINES} labels created" in summary.inner_text()
    assert (Comparison.objects.filter(project=project).count(), Label.objects.count()) == (N_LINES, N_LINES)
    assert sorted(set(Label.objects.values_list("labeler__username", flat=True))) == list(WORKERS)

    # 4. Training settings: a misspelt JSON key and an out-of-range value are refused beside their fields.
    _press_link(page, "/training/projects/walk-through/runs/")
    page.wait_for_url(f"{base}/training/projects/walk-through/runs/")
    _press_link(page, "/training/projects/walk-through/settings/")
    page.wait_for_url(f"{base}/training/projects/walk-through/settings/")
    page.wait_for_load_state()
    assert page.evaluate("document.activeElement.id") == "id_base_model"
    _replace(page, "#id_ppo__lam", "2")
    _replace(page, "#id_more", '{"ppo": {"kl_coeff": 0.1}}')
    page.keyboard.press("Control+Enter")
    page.locator("#id_ppo__lam_error").wait_for()
    assert "lam must be in [0, 1]" in page.inner_text("#id_ppo__lam_error")
    assert "did you mean 'kl_coef'" in page.inner_text("#id_ppo__kl_coef_error")
    assert Project.objects.get(id=project.id).training_settings == {}

    # Fixed, with small fast settings and the tiny base: Enter in a field saves.
    _replace(page, "#id_more", "")
    _replace(page, "#id_ppo__lam", "")
    values = {"base_model": "tiny", **{f"task__{k}": v for k, v in FAST_TASK.items()},
              **{f"reward__{k}": v for k, v in FAST_REWARD.items() if k not in FAST_TASK},
              "reward__epochs": 3,
              **{f"ppo__{k}": v for k, v in FAST_PPO.items() if k not in FAST_TASK},
              **{f"sample__{k}": v for k, v in FAST_SAMPLE.items() if k not in FAST_TASK}}
    for name, value in values.items():
        _replace(page, f"#id_{name}", str(value))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/training/projects/walk-through/settings/?saved=1")
    stored = Project.objects.get(id=project.id).training_settings
    assert stored.get("base_model", settings.TRAINING_DEFAULT_BASE_MODEL) == "tiny"  # a default is not stored
    assert stored["reward"]["epochs"] == 3 and stored["task"]["response_length"] == 8
    assert stored["ppo"]["total_episodes"] == FAST_PPO["total_episodes"] and "lam" not in stored["ppo"]
    assert stored["sample"]["n_queries"] == FAST_SAMPLE["n_queries"]

    # 5. A round from the rounds page (Enter on its button), watched until it ends.
    page.goto(f"{base}/training/projects/walk-through/runs/")
    page.focus("#round-settings summary")
    page.keyboard.press("Enter")  # opens the settings this round will use
    preview = page.inner_text("#round-settings")
    assert "total_episodes = 48" in preview and '"tiny"' in preview and "lam =" not in preview
    page.focus("#round-start-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/training/runs/\d+/$"))
    shown = _wait_round_on_page(page, base, "walk-through", worker)
    rnd = Round.objects.get(project=project)
    runs = {r.kind: r for r in rnd.runs.all()}
    assert shown == "finished" and rnd.status == Round.Status.FINISHED, (
        {k: (r.status, r.error[-800:]) for k, r in runs.items()}, worker.logs()[-3000:])
    assert all(r.base_model == "tiny" for r in runs.values())

    # The sample run's page: the new policy's samples beside the base's for the same queries.
    sample_run = runs[TrainingRun.Kind.SAMPLE]
    published = Comparison.objects.filter(source_run=sample_run)
    assert published.count() == FAST_SAMPLE["n_queries"]
    with_base = [c for c in published.order_by("-id") if c.samples.filter(source=BASE_POLICY_SOURCE).exists()]
    assert with_base, "the sample run published no comparison with a base sample"
    page.goto(f"{base}/training/runs/{sample_run.id}/")
    assert "{#" not in page.inner_text("body")  # no template comment leaks onto the page
    rows = page.locator(".sample-row")
    assert rows.count() == FAST_SAMPLE["n_queries"]
    first = rows.first  # the newest comparison holding the base's sample beside the policy's
    assert first.locator(".card").nth(0).locator(".sample-text").count() >= 1
    assert first.locator(".card").nth(1).locator(".sample-text").count() >= 1
    assert f"comparison {with_base[0].id}" in first.locator(".context").inner_text().lower()
    assert first.locator(".context .model-text").inner_text().startswith(with_base[0].query.context.split("\n")[0])

    # 6. The export page: the 2020 layout downloads what was imported and labeled.
    page.goto(f"{base}/")
    _press_link(page, "/projects/walk-through/export/")
    page.wait_for_url(f"{base}/projects/walk-through/export/")
    page.focus("#id_layout")
    page.select_option("#id_layout", "2020")
    page.locator("#export-count", has_text=f"{N_LINES} labels match").wait_for()
    page.focus("#export-download")
    with page.expect_download() as caught:
        page.keyboard.press("Enter")
    download = caught.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    exported = {row["info"]["id"]: row for row in map(json.loads, target.read_text().splitlines())}
    assert set(exported) == {line["info"]["id"] for line in lines}
    for line in lines:
        row = exported[line["info"]["id"]]
        assert [s["text"] for s in row["summaries"]] == [s["text"] for s in line["summaries"]]
        assert [s["policy"] for s in row["summaries"]] == [s["policy"] for s in line["summaries"]]
        assert (row["choice"], row["worker"], row["split"]) == (line["choice"], line["worker"], "train")
        assert row["info"]["post"].startswith(line["info"]["post"])
    assert page.dialogs == []
    assert time.monotonic() - started < 240
