"""Celery tasks: thin. They take ids, never instances, and call one service each.

The one import cycle of the training app, on purpose: services enqueue these tasks
(services/runs.py `run_enqueue`) and these tasks run services. Both sides import inside the function,
so neither module loads the other at import time; and the worker's heavy code (torch, through
services/execute.py) is imported only when a task runs, never by a web process that enqueues one.
"""
from celery import shared_task


@shared_task(bind=True, acks_late=False, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def run_execute_task(self, run_id: int) -> None:
    from training.services.execute import run_execute  # local: see the module docstring

    run_execute(run_id=run_id)


@shared_task
def runs_reap_task() -> None:
    from training.services.leases import runs_reap  # local: see the module docstring

    runs_reap()
