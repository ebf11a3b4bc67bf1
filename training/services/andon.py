"""The andon cord: anyone shown a policy's samples, and any admin, can stop what descends from it.

A pull names the run whose policy the puller saw (a sample run's comparison shows its PPO run's policy)
and the checkpoint on the samples. It withdraws every comparison of that policy and of every run that
descends from it, labeled or not; asks every active such run to stop; and quarantines the policy's
checkpoints (no sampling, publishing, base use or download) until an admin resolves it: confirmed
(quarantine kept, its labels optionally left out of reward fits) or dismissed (the comparisons return,
the stopped runs may be resumed).

Stopping is cooperative: the run goes to stop_requested, and its trainer sees that in its next
heartbeat (every PPO step and inside long phases), checkpoints and marks the run stopped. A trainer
that does not acknowledge within ANDON_ACK_DEADLINE_SECONDS is marked unresponsive by the reaper; an
admin may then send SIGTERM to that run's own trainer process (never `revoke(terminate=True)`).
"""
from __future__ import annotations

import os
import signal
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.models import Comparison
from labeling.roles import user_role
from labeling.services import comparisons_withdraw
from training.models import AndonPull, Checkpoint, Round, TrainingRun
from training.selectors.andon import (
    base_model_quarantine,
    checkpoint_by_name,
    comparison_policy,
    policy_comparisons,
    run_comparisons,
    run_descendants,
    run_quarantine,
    run_served_to,
    run_stopping_pulls,
    user_sees_all_runs,
)
from training.services.runs import run_enqueue

Status = TrainingRun.Status
Resolution = AndonPull.Resolution
PULLS_PER_USER_PER_10_MIN = 5


class Quarantined(InvalidInput):
    """A run would sample, publish or start from a checkpoint the andon cord quarantined."""


def andon_can_pull(*, run: TrainingRun, user) -> bool:
    return user.is_authenticated and (user_sees_all_runs(user) or run_served_to(run=run, user=user))


def _stop(run_id: int, *, by, reason: str, now) -> bool:
    """Ask one run to stop; True when it was queued or running (a queued run stops right here)."""
    changed = TrainingRun.objects.filter(id=run_id, status__in=[Status.QUEUED, Status.RUNNING]).update(
        status=Status.STOP_REQUESTED, stop_requested_at=now, stop_requested_by=by, stop_reason=reason[:5000]
    )
    # A queued run has no trainer to acknowledge: it stops right here.
    TrainingRun.objects.filter(id=run_id, status=Status.STOP_REQUESTED, lease_owner="").update(
        status=Status.STOPPED, finished_at=now
    )
    return bool(changed)


def andon_pull(*, run: TrainingRun, user=None, reason: str, tripwire: str = "", comparison: Comparison | None = None,
               source: str = "") -> AndonPull:
    """Pull the cord on `run`'s policy (`source`: the checkpoint name the puller saw): withdraw every comparison
    of it and of its descendants, stop every active descendant run, quarantine it; an audit row.

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
    for attempt in range(2):
        # The checkpoint the samples name: the trainer prunes old checkpoints and drops their rows, so one may go
        # between this read and the commit; the pull's reference to it is then a foreign-key error at commit.
        checkpoint = checkpoint_by_name(run, source) if run.kind == TrainingRun.Kind.PPO else None
        try:
            return _pull_write(run=run, user=user, reason=reason, tripwire=tripwire, comparison=comparison,
                               source=source, checkpoint=checkpoint, now=now)
        except IntegrityError:
            if AndonPull.objects.filter(run=run, resolution="").exists():
                raise Conflict("The cord on this run is already pulled; an admin will confirm or dismiss it.") from None
            if attempt:
                raise
    raise AssertionError("unreachable")


def _pull_write(*, run, user, reason, tripwire, comparison, source, checkpoint, now) -> AndonPull:
    """andon_pull's writes, in one transaction."""
    with transaction.atomic():
        # The row lock orders the pull against the trainer's heartbeats, so `at_step` is the
        # last step the trainer reported before it could see the stop request; and against a
        # sample run's publishing, which re-reads the quarantine under the same lock.
        at_step = TrainingRun.objects.select_for_update().values_list("step", flat=True).get(id=run.id)
        pull = AndonPull.objects.create(
            run=run, pulled_by=user, role=user_role(user) if user else "tripwire", tripwire=tripwire,
            reason=reason, at_step=at_step, comparison=comparison, source=source[:200], checkpoint=checkpoint,
        )
        runs = run_descendants(run)
        names = [source, *(c.name for c in Checkpoint.objects.filter(run=run))]
        withdraw = list(policy_comparisons(run_ids=runs, sources=names, project_id=run.project_id)
                        .filter(status=Comparison.Status.ACTIVE).values_list("id", flat=True))
        comparisons_withdraw(comparison_ids=withdraw)
        pull.withdrawn.add(*withdraw)
        pull.stopped.add(*[run_id for run_id in runs if _stop(run_id, by=user, reason=reason, now=now)])
    return pull


def andon_pull_comparison(*, comparison: Comparison, user, reason: str) -> AndonPull:
    """Pull the cord on what a labeler was shown: the policy (checkpoint) that wrote this comparison's samples."""
    run, source = comparison_policy(comparison)
    if run is None:
        raise Conflict("These samples come from no training run (an import): flag them instead.")
    return andon_pull(run=run, user=user, reason=reason, comparison=comparison, source=source)


def quarantine_check(*, run: TrainingRun | None = None, base_model: str = "", policy_run_id: int | None = None) -> None:
    """Refuse a run that would sample, publish or start from a quarantined checkpoint (Quarantined)."""
    pulls = [run_quarantine(policy_run_id), base_model_quarantine(base_model)]
    if run is not None:
        pulls += [run_quarantine(run.policy_run_id), run_quarantine(run.reward_run_id),
                  base_model_quarantine(run.base_model)]
        if run.kind == TrainingRun.Kind.PPO and run.product.get("publish_every"):
            pulls.append(run_quarantine(run.id))
    for pull in pulls:
        if pull is not None:
            state = "open" if pull.resolution == Resolution.OPEN else pull.get_resolution_display().lower()
            raise Quarantined(
                f"The policy of run {pull.run_id} is quarantined by the andon cord (pull {pull.id}, {state}): "
                "its checkpoints are not sampled, published or used as a base until an admin dismisses the pull.")


def _require_admin(user) -> None:
    if not (user.is_authenticated and user.has_perm("training.manage_runs")):
        raise Forbidden("Only admins resolve pulls, resume, abort or escalate runs.")


def _restore(pull: AndonPull) -> int:
    """Put back in the queue what this pull withdrew, unless another unresolved pull withdrew it too."""
    held = AndonPull.withdrawn.through.objects.filter(
        andonpull__resolution__in=AndonPull.QUARANTINE).exclude(andonpull=pull).values("comparison_id")
    ids = pull.withdrawn.exclude(id__in=held).values_list("id", flat=True)
    # Withdrawn leases are not live, so every slot not taken by a label is open again.
    return Comparison.objects.filter(id__in=list(ids), status=Comparison.Status.WITHDRAWN).update(
        status=Comparison.Status.ACTIVE, open_slots=F("labels_wanted") - F("label_count"))


def _close(pull: AndonPull, *, user, resolution: str, note: str, now, exclude_labels: bool = False) -> None:
    AndonPull.objects.filter(id=pull.id).update(
        resolution=resolution, resolved_by=user, resolved_at=now, resolution_note=note[:5000],
        exclude_labels=exclude_labels)
    if resolution in (Resolution.DISMISSED, Resolution.RESUMED):
        _restore(pull)


def andon_resolve(*, pull: AndonPull, user, resolution: str, note: str, exclude_labels: bool = False) -> AndonPull:
    """Admin: end an open pull with a reason. Confirmed keeps the quarantine (and may leave its labels out of
    reward fits); dismissed returns its comparisons to the queue and lets the runs it stopped be resumed."""
    _require_admin(user)
    note = (note or "").strip()
    if resolution not in (Resolution.CONFIRMED, Resolution.DISMISSED):
        raise InvalidInput("Resolve a pull as confirmed or dismissed.", field="resolution")
    if not note:
        raise InvalidInput("Say why: a reason is required to resolve a pull.", field="note")
    with transaction.atomic():
        locked = AndonPull.objects.select_for_update().filter(id=pull.id, resolution=Resolution.OPEN).first()
        if locked is None:
            raise Conflict("This pull is already resolved.")
        _close(locked, user=user, resolution=resolution, note=note, now=timezone.now(),
               exclude_labels=exclude_labels and resolution == Resolution.CONFIRMED)
    pull.refresh_from_db()
    return pull


def _requeue_round(run: TrainingRun) -> None:
    """A resumed run's round continues: its runs stopped before they ever started wait again for their inputs."""
    if run.round_id is None:
        return
    TrainingRun.objects.filter(round_id=run.round_id, status=Status.STOPPED, attempts=0).exclude(id=run.id).update(
        status=Status.QUEUED, stop_requested_at=None, stop_requested_by=None, stop_reason="", finished_at=None)
    if not Round.objects.filter(project_id=run.project_id, status=Round.Status.RUNNING).exclude(
            id=run.round_id).exists():
        Round.objects.filter(id=run.round_id, status=Round.Status.STOPPED).update(
            status=Round.Status.RUNNING, finished_at=None)


def andon_resume(*, run: TrainingRun, user, note: str = "") -> TrainingRun:
    """Admin: queue a stopped run again; it continues from its last checkpoint. Its own open pull is resolved
    (resumed: its comparisons return); a pull on another policy that stopped it must be dismissed first."""
    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        own = AndonPull.objects.filter(run=run, resolution=Resolution.OPEN).first()
        blocking = run_stopping_pulls(run).exclude(id=own.id if own else None).first()
        if blocking is not None:
            raise Conflict(f"Run {run.id} was stopped by the cord on run {blocking.run_id} (pull {blocking.id}, "
                           f"{blocking.get_resolution_display().lower()}); an admin dismisses that pull first.")
        changed = TrainingRun.objects.filter(id=run.id, status=Status.STOPPED).update(
            status=Status.QUEUED, attempts=0, stop_requested_at=None, stop_requested_by=None, stop_reason="",
            unresponsive_at=None, finished_at=None, error="", lease_owner="", lease_expires_at=None,
        )
        if not changed:
            raise Conflict(f"Only a stopped run can be resumed; this one is {run.get_status_display().lower()}.")
        if own is not None:
            _close(own, user=user, resolution=Resolution.RESUMED, note=note, now=now)
        _requeue_round(run)
        run_enqueue(run_id=run.id)
    run.refresh_from_db()
    return run


def andon_abort(*, run: TrainingRun, user, note: str = "") -> TrainingRun:
    """Admin: end the run for good (its own open pull: aborted, quarantine kept). A trainer still holding the
    lease loses it at its next heartbeat."""
    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        changed = TrainingRun.objects.filter(id=run.id, status__in=[*TrainingRun.ACTIVE, Status.STOPPED]).update(
            status=Status.ABORTED, finished_at=now, lease_owner="", lease_expires_at=None
        )
        if not changed:
            raise Conflict("This run has already ended.")
        own = AndonPull.objects.filter(run=run, resolution=Resolution.OPEN).first()
        if own is not None:
            _close(own, user=user, resolution=Resolution.ABORTED, note=note, now=now)
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


