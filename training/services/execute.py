"""Running a claimed run in a worker: claim the lease, dispatch on kind, release with the outcome."""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded

from training.models import TrainingRun
from training.services.andon import quarantine_check
from training.services.leases import new_owner, run_claim, run_release
from training.services.reporter import LeaseLost, RunReporter
from training.services.rounds import round_run_ended
from training.services.tripwires import tripwire_for

logger = logging.getLogger(__name__)
Status = TrainingRun.Status


def _executor(kind: str) -> Callable[..., None]:
    # Imported on use: they load torch, which the web process never needs.
    if kind == TrainingRun.Kind.FIT_REWARD:
        from training.services.reward_fit import reward_fit_execute

        return reward_fit_execute
    if kind == TrainingRun.Kind.PPO:
        from training.services.ppo import ppo_execute

        return ppo_execute
    from training.services.sampling import sample_execute

    return sample_execute


def run_execute(*, run_id: int) -> str | None:
    """Claim and run one run. Returns its final status, or None when another worker holds it."""
    owner = new_owner()
    if not run_claim(run_id=run_id, owner=owner):
        logger.info("run %s: not claimable (held elsewhere, ended, or out of attempts); exiting", run_id)
        return None
    run = TrainingRun.objects.get(id=run_id)
    reporter = RunReporter(run=run, owner=owner, tripwire=tripwire_for(run))
    logger.info("run %s (%s): claimed by %s, attempt %s", run.id, run.kind, owner, run.attempts)
    try:
        quarantine_check(run=run)  # a run that would use a checkpoint the andon cord quarantined fails at start
        _executor(run.kind)(run=run, reporter=reporter)
    except LeaseLost:
        logger.warning("run %s: lease lost (reaped or aborted); this worker stops without writing", run.id)
        return None
    except SoftTimeLimitExceeded:
        status = Status.FAILED
        run_release(run_id=run.id, owner=owner, status=status,
                    error="Soft time limit reached; resume from the last checkpoint.")
    except Exception:  # noqa: BLE001 - any trainer error must end the run with its traceback, not leave it leased
        logger.exception("run %s failed", run.id)
        status = Status.FAILED
        run_release(run_id=run.id, owner=owner, status=status, error=traceback.format_exc())
    else:
        status = Status.STOPPED if reporter.stop_requested else Status.FINISHED
        run_release(run_id=run.id, owner=owner, status=status)
    round_run_ended(run_id=run.id)
    return status
