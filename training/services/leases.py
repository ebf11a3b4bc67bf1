"""Run leases: the database decides which worker trains a run, never the broker.

A task claims a run with one conditional UPDATE and exits if no row changed (a duplicate
delivery, or another worker already holds it). The trainer renews the lease every step in the
same round trip that reads the stop flag. A beat task reaps runs whose lease expired:
re-queue up to `max_attempts`, else fail with the reason.
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from training.models import TrainingRun

Status = TrainingRun.Status


def lease_seconds() -> int:
    return settings.TRAINING_LEASE_SECONDS


def new_owner() -> str:
    """A lease owner id unique to this process and claim."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_claim(*, run_id: int, owner: str, now: datetime | None = None) -> bool:
    """Take the lease of a queued run (or of one whose lease expired). True if this caller got it."""
    now = now or timezone.now()
    claimable = Q(status=Status.QUEUED) | Q(status__in=[Status.RUNNING, Status.STOP_REQUESTED], lease_expires_at__lt=now)
    changed = (
        TrainingRun.objects.filter(claimable, id=run_id)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(attempts__lt=F("max_attempts"))
        .update(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            pid=os.getpid(),
            hostname=socket.gethostname(),
        )
    )
    if changed:
        # A stop requested while queued stays requested; otherwise the run is now running.
        TrainingRun.objects.filter(id=run_id, status=Status.QUEUED).update(status=Status.RUNNING)
        TrainingRun.objects.filter(id=run_id, started_at__isnull=True).update(started_at=now)
    return changed == 1


@dataclass(frozen=True)
class Heartbeat:
    lease_lost: bool  # someone else owns the run now (reaped, aborted): stop without writing
    stop_requested: bool  # the andon cord: checkpoint and stop


def run_heartbeat(*, run_id: int, owner: str, step: int | None = None, now: datetime | None = None) -> Heartbeat:
    """Renew the lease and read the stop flag in one round trip (UPDATE … RETURNING status)."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=lease_seconds())
    table = TrainingRun._meta.db_table
    step_sql = ", step = %s" if step is not None else ""
    params: list = [expires, now]
    if step is not None:
        params.append(step)
    params += [run_id, owner, Status.RUNNING, Status.STOP_REQUESTED]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET lease_expires_at = %s, heartbeat_at = %s{step_sql} "
            f"WHERE id = %s AND lease_owner = %s AND status IN (%s, %s) RETURNING status",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return Heartbeat(lease_lost=True, stop_requested=True)
    return Heartbeat(lease_lost=False, stop_requested=row[0] == Status.STOP_REQUESTED)


def run_release(*, run_id: int, owner: str, status: str, error: str = "", now: datetime | None = None) -> bool:
    """End the run as `status` if this owner still holds it; clears the lease."""
    now = now or timezone.now()
    fields = {"status": status, "lease_owner": "", "lease_expires_at": None, "pid": None}
    if status in TrainingRun.ENDED:
        fields["finished_at"] = now
    if error:
        fields["error"] = error[:10000]
    return TrainingRun.objects.filter(id=run_id, lease_owner=owner).update(**fields) == 1


def runs_reap(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Re-queue runs whose lease expired (their worker died) or fail them after max attempts.

    Also marks stop requests that no trainer acknowledged within the deadline as unresponsive.
    Returns the ids it re-queued, failed, stopped and marked unresponsive.
    """
    now = now or timezone.now()
    result: dict[str, list[int]] = {"requeued": [], "failed": [], "stopped": [], "unresponsive": []}
    with transaction.atomic():
        expired = list(
            TrainingRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=[Status.RUNNING, Status.STOP_REQUESTED], lease_expires_at__lt=now)
            .values_list("id", "status", "attempts", "max_attempts")
        )
        for run_id, status, attempts, max_attempts in expired:
            base = TrainingRun.objects.filter(id=run_id, lease_expires_at__lt=now)
            cleared = {"lease_owner": "", "lease_expires_at": None, "pid": None}
            if status == Status.STOP_REQUESTED:
                # The cord was pulled and the trainer died: the run is stopped at its last checkpoint.
                base.update(status=Status.STOPPED, finished_at=now, **cleared)
                result["stopped"].append(run_id)
            elif attempts < max_attempts:
                base.update(status=Status.QUEUED, **cleared)
                result["requeued"].append(run_id)
            else:
                base.update(status=Status.FAILED, finished_at=now,
                            error=f"Lease expired after {attempts} attempts (worker lost each time).", **cleared)
                result["failed"].append(run_id)
    deadline = now - timedelta(seconds=settings.ANDON_ACK_DEADLINE_SECONDS)
    unresponsive = TrainingRun.objects.filter(
        status=Status.STOP_REQUESTED, stop_requested_at__lt=deadline, unresponsive_at__isnull=True
    )
    result["unresponsive"] = list(unresponsive.values_list("id", flat=True))
    unresponsive.filter(id__in=result["unresponsive"]).update(unresponsive_at=now)
    if result["requeued"]:
        from training.services.runs import run_enqueue

        for run_id in result["requeued"]:
            run_enqueue(run_id=run_id)
    return result
