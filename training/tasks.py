"""Celery tasks: thin. They take ids, never instances, and call one service each."""
from celery import shared_task


@shared_task(bind=True, acks_late=False, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def run_execute_task(self, run_id: int) -> None:
    # Local import: services import this module to enqueue.
    from training.services.execute import run_execute

    run_execute(run_id=run_id)


@shared_task
def runs_reap_task() -> None:
    from training.services.leases import runs_reap

    runs_reap()
