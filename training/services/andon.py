"""The andon cord: anyone looking at a run's samples, and any admin, can stop the run.

Stopping is cooperative: the run goes to stop_requested, and its trainer sees that in its next
heartbeat (every PPO step and inside long phases), checkpoints and marks the run stopped. The
run's unlabeled comparisons leave the queue at once. A trainer that does not acknowledge
within ANDON_ACK_DEADLINE_SECONDS is marked unresponsive by the reaper; an admin may then
send SIGTERM to that run's own trainer process (never `revoke(terminate=True)`).
"""
from __future__ import annotations

import os
import signal
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.roles import user_role
from labeling.services import comparisons_withdraw
from training.models import AndonPull, TrainingRun
from training.selectors import run_comparisons, run_served_to
from training.services.runs import run_enqueue

Status = TrainingRun.Status
PULLS_PER_USER_PER_10_MIN = 5


def andon_can_pull(*, run: TrainingRun, user) -> bool:
    if not user.is_authenticated:
        return False
    if user.has_perm("training.start_runs") or user.has_perm("training.manage_runs"):
        return True
    return run_served_to(run=run, user=user)


def _stop(run: TrainingRun, *, by, reason: str, now) -> None:
    TrainingRun.objects.filter(id=run.id, status__in=[Status.QUEUED, Status.RUNNING]).update(
        status=Status.STOP_REQUESTED, stop_requested_at=now, stop_requested_by=by, stop_reason=reason[:5000]
    )
    # A queued run has no trainer to acknowledge: it stops right here.
    TrainingRun.objects.filter(id=run.id, status=Status.STOP_REQUESTED, lease_owner="").update(
        status=Status.STOPPED, finished_at=now
    )
    comparisons_withdraw(comparison_ids=list(run_comparisons(run).filter(label_count=0).values_list("id", flat=True)))


def andon_pull(*, run: TrainingRun, user=None, reason: str, tripwire: str = "") -> AndonPull:
    """Pull the cord on `run`: stop request, its unlabeled comparisons withdrawn, an audit row.

    `user=None` with a `tripwire` name is an automatic pull. At most one open pull per run
    (Conflict); contractors only on runs whose samples they were served (Forbidden); rate-limited.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why you pull the cord: a reason is required.", field="reason")
    now = timezone.now()
    if user is not None:
        if not andon_can_pull(run=run, user=user):
            raise Forbidden("You can pull the cord only on runs whose samples you were shown.")
        recent = AndonPull.objects.filter(pulled_by=user, created_at__gte=now - timedelta(minutes=10)).count()
        if recent >= PULLS_PER_USER_PER_10_MIN:
            raise Conflict("Too many pulls from you in the last 10 minutes; ask an admin.")
    try:
        with transaction.atomic():
            # The row lock orders the pull against the trainer's heartbeats, so `at_step` is the
            # last step the trainer reported before it could see the stop request.
            at_step = TrainingRun.objects.select_for_update().values_list("step", flat=True).get(id=run.id)
            pull = AndonPull.objects.create(
                run=run, pulled_by=user, role=user_role(user) if user else "tripwire", tripwire=tripwire,
                reason=reason, at_step=at_step,
            )
            _stop(run, by=user, reason=reason, now=now)
    except IntegrityError:
        raise Conflict("The cord on this run is already pulled; an admin will resume or abort it.") from None
    return pull


def _require_admin(user) -> None:
    if not (user.is_authenticated and user.has_perm("training.manage_runs")):
        raise Forbidden("Only admins resume, abort or escalate runs.")


def _resolve_open(run: TrainingRun, *, user, resolution: str, note: str, now) -> None:
    AndonPull.objects.filter(run=run, resolution=AndonPull.Resolution.OPEN).update(
        resolution=resolution, resolved_by=user, resolved_at=now, resolution_note=note[:5000]
    )


def andon_resume(*, run: TrainingRun, user, note: str = "") -> TrainingRun:
    """Admin: queue a stopped run again; it continues from its last checkpoint."""
    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        changed = TrainingRun.objects.filter(id=run.id, status=Status.STOPPED).update(
            status=Status.QUEUED, attempts=0, stop_requested_at=None, stop_requested_by=None, stop_reason="",
            unresponsive_at=None, finished_at=None, error="", lease_owner="", lease_expires_at=None,
        )
        if not changed:
            raise Conflict(f"Only a stopped run can be resumed; this one is {run.get_status_display().lower()}.")
        _resolve_open(run, user=user, resolution=AndonPull.Resolution.RESUMED, note=note, now=now)
        run_enqueue(run_id=run.id)
    run.refresh_from_db()
    return run


def andon_abort(*, run: TrainingRun, user, note: str = "") -> TrainingRun:
    """Admin: end the run for good. A trainer still holding the lease loses it at its next heartbeat."""
    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        changed = TrainingRun.objects.filter(id=run.id, status__in=[*TrainingRun.ACTIVE, Status.STOPPED]).update(
            status=Status.ABORTED, finished_at=now, lease_owner="", lease_expires_at=None
        )
        if not changed:
            raise Conflict("This run has already ended.")
        _resolve_open(run, user=user, resolution=AndonPull.Resolution.ABORTED, note=note, now=now)
        comparisons_withdraw(comparison_ids=list(run_comparisons(run).filter(label_count=0).values_list("id", flat=True)))
    run.refresh_from_db()
    return run


def andon_escalate(*, run: TrainingRun, user) -> str:
    """Admin: SIGTERM the trainer of an unresponsive run (only its own recorded pid, on this host)."""
    _require_admin(user)
    run.refresh_from_db()
    if run.status != Status.STOP_REQUESTED or run.unresponsive_at is None:
        raise Conflict("Escalate only a run marked unresponsive after a stop request.")
    if not run.pid or run.hostname != socket.gethostname():
        raise Conflict(f"The trainer runs on {run.hostname or 'an unknown host'}; stop it there (pid {run.pid}).")
    try:
        os.kill(run.pid, signal.SIGTERM)
    except ProcessLookupError:
        message = f"Trainer pid {run.pid} was already gone; the reaper will reconcile the run."
    else:
        message = f"Sent SIGTERM to trainer pid {run.pid}."
    AndonPull.objects.filter(run=run, resolution=AndonPull.Resolution.OPEN).update(
        resolution_note=f"{timezone.now():%Y-%m-%d %H:%M:%S} {user.username}: {message}"
    )
    return message


