"""A run's page (polled while it runs), the admins' actions on it, checkpoint downloads and its plots."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from labeling.errors import LabelingError
from training import selectors, services
from training.charts import line_chart
from training.models import AndonPull, Checkpoint, TrainingRun
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.services.sampling import DEFAULTS as SAMPLE_DEFAULTS
from training.views.responses import done_notice, error_notice


def _run_context(request: HttpRequest, run: TrainingRun) -> dict:
    series = selectors.run_metric_series(run, selectors.CHART_KEYS)
    return {
        "run": run,
        "charts": [line_chart(key, series[key]) for key in selectors.CHART_KEYS if key in series],
        "latest": selectors.run_latest_metrics(run),
        "checkpoints": selectors.run_checkpoints(run),
        "audit": selectors.run_audit_log(run),
        "can_pull": services.andon_can_pull(run=run, user=request.user),
        "can_manage": request.user.has_perm("training.manage_runs"),
        "progress_pct": round(run.progress * 100),
        "report": selectors.run_report(run),
        "reward_data": selectors.run_reward_data(run),
        "quarantine": selectors.run_quarantine(run.id),
        "open_pull": run.andon_pulls.filter(resolution=AndonPull.Resolution.OPEN).first(),
        "stopping_pulls": selectors.run_stopping_pulls(run),
        # How long the worker has been silent: a dead worker shows here long before the reaper acts.
        "heartbeat_age_s": round((timezone.now() - run.heartbeat_at).total_seconds()) if run.heartbeat_at else None,
    }


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    """{"config.lr": 1e-05, "product.tripwires.kl_max": 30.0, …}: nested objects by dotted path."""
    if isinstance(value, dict) and value:
        return {k: v for key, inner in value.items() for k, v in _flat(f"{prefix}.{key}", inner).items()}
    return {prefix: value}


def _library_defaults(run: TrainingRun) -> dict[str, Any]:
    """What a run of this kind uses where its config is silent (the worker sets seed and model itself)."""
    cls = {TrainingRun.Kind.FIT_REWARD: RewardFitConfig, TrainingRun.Kind.PPO: PPOConfig}.get(run.kind)
    if cls is not None:
        return {f"config.{f.name}": f.default for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING and f.name != "seed"}
    return {f"config.{key}": value for key, value in SAMPLE_DEFAULTS.items()} if run.kind == "sample" else {}


def run_config_rows(run: TrainingRun) -> list[tuple[str, str]]:
    """The run's effective settings as (dotted key, JSON value): base model, seed, config, product."""
    values = {"base_model": run.base_model, "seed": run.seed, **_flat("config", run.config or {}),
              **_flat("product", run.product or {})}
    return [(key, json.dumps(value)) for key, value in values.items() if value != {}]


def run_config_diff(a: TrainingRun, b: TrainingRun) -> list[tuple[str, str, str]]:
    """(key, a's value, b's value) for each setting that differs; a key one run leaves unset compares as
    its library default (shown as "default …")."""
    flat_a, flat_b = dict(run_config_rows(a)), dict(run_config_rows(b))
    defaults_a, defaults_b = _library_defaults(a), _library_defaults(b)

    def value(flat: dict, defaults: dict, key: str) -> tuple[str, str]:
        if key in flat:
            return flat[key], flat[key]
        if key in defaults:
            return json.dumps(defaults[key]), f"default {json.dumps(defaults[key])}"
        return "", "not set"

    rows = []
    for key in sorted(set(flat_a) | set(flat_b)):
        (raw_a, shown_a), (raw_b, shown_b) = value(flat_a, defaults_a, key), value(flat_b, defaults_b, key)
        if raw_a != raw_b:
            rows.append((key, shown_a, shown_b))
    return rows


@require_GET
@login_required
def training_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    context = _run_context(request, run)
    if request.htmx:
        response = render(request, "training/run_detail.html#run-status", context)
        # The poll ends with the run: 286 makes htmx stop (after this last swap).
        return HttpResponseStopPolling(response.content) if not run.is_active else response
    context["samples"] = selectors.run_samples_side_by_side(run)
    if selectors.user_sees_all_runs(request.user):  # the settings are the researchers' (not a labeler's)
        context["config_rows"] = run_config_rows(run)
    return render(request, "training/run_detail.html", context)


def _researchers_run(request: HttpRequest, run_id: int) -> TrainingRun:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    if not selectors.user_sees_all_runs(request.user):
        raise Http404("No such run.")
    return run


@require_GET
@login_required
def training_run_diff_pick(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's "compare with run #" form: on to the diff page."""
    run = _researchers_run(request, run_id)
    other = request.GET.get("other", "").strip().lstrip("#")
    if not other.isdigit() or len(other) > 12:
        return HttpResponse("Give the number of a run to compare with.", status=400, content_type="text/plain")
    return redirect("training-run-diff", run_id=run.id, other_id=int(other))


@require_GET
@login_required
def training_run_diff(request: HttpRequest, run_id: int, other_id: int) -> HttpResponse:
    """The settings two runs of one project differ in (researchers; 404 for another project's run)."""
    run = _researchers_run(request, run_id)
    other = _researchers_run(request, other_id)
    if other.project_id != run.project_id:
        raise Http404("No such run in this project.")
    return render(request, "training/run_diff.html", {
        "run": run, "other": other, "rows": run_config_diff(run, other),
    })


@require_POST
@login_required
def training_run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    note = request.POST.get("note", "")[:5000]
    try:
        if action == "resume":
            services.andon_resume(run=run, user=request.user, note=note)
            message = f"Run {run.id} resumes from its last checkpoint."
        elif action == "abort":
            services.andon_abort(run=run, user=request.user, note=note)
            message = f"Run {run.id} is aborted."
        elif action == "escalate":
            message = services.andon_escalate(run=run, user=request.user)
        else:
            raise Http404("No such action.")
    except LabelingError as error:
        return error_notice(request, error)
    return done_notice(request, run, message)


@require_GET
@login_required
def training_checkpoint_download(request: HttpRequest, checkpoint_id: int) -> HttpResponse:
    """A zip of the checkpoint folder (researchers and admins; the folder must lie under ARTIFACTS_DIR)."""
    if not selectors.user_sees_all_runs(request.user):
        raise Http404("No such checkpoint.")
    checkpoint = Checkpoint.objects.filter(id=checkpoint_id).first()
    if checkpoint is None:
        raise Http404("No such checkpoint.")
    pull = selectors.run_quarantine(checkpoint.run_id)
    if pull is not None:  # a quarantined checkpoint is not handed out, e.g. as another trainer's base
        return HttpResponse(f"Checkpoint {checkpoint.name} is quarantined by andon pull {pull.id} until an admin "
                            "dismisses it.", status=409, content_type="text/plain")
    folder = Path(checkpoint.path).resolve()
    root = Path(settings.ARTIFACTS_DIR).resolve()
    if root not in folder.parents or not folder.is_dir():
        raise Http404("Checkpoint files are not on this server.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder))
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=f"{checkpoint.name}.zip")


@require_GET
@login_required
def training_run_plot(request: HttpRequest, run_id: int, name: str) -> HttpResponse:
    """A PNG plot the experiment recorded for this run (researchers and admins); its path comes from the database."""
    if not selectors.user_sees_all_runs(request.user):
        raise Http404("No such plot.")
    run = TrainingRun.objects.filter(id=run_id).first()
    path = selectors.run_plot_path(run, name) if run is not None else None
    if path is None:
        raise Http404("No such plot.")
    return FileResponse(path.open("rb"), content_type="image/png")
