"""Celery tasks of the labeling app: thin. They take ids, never instances, and call one service each.

The app's import cycles, on purpose: services/simulation.py enqueues simulate_labeling_task and
services/imports.py import_execute_task, and each task runs that service. Both sides import inside the function, so neither module loads the other
at import time (the same as training/tasks.py and its services).
"""
from celery import Task, shared_task


@shared_task(soft_time_limit=3600, time_limit=3600 + 60)
def simulate_labeling_task(project_id: int, labeler_ids: list[int], n: int, rate: float | None = None) -> dict:
    from labeling.models import Project, SimulatedLabeler
    from labeling.services.simulation import simulate_labeling  # local: see the module docstring

    project = Project.objects.get(id=project_id)
    labelers = list(SimulatedLabeler.objects.select_related("user").filter(id__in=labeler_ids).order_by("id"))
    return simulate_labeling(project=project, labelers=labelers, n=n, rate=rate).as_dict()


@shared_task(soft_time_limit=600, time_limit=600 + 60)
def dashboard_snapshots_refresh_task() -> dict:
    """Beat: the shared snapshots of active projects' label columns, brought up to date."""
    from labeling.selectors.quality import dashboard_snapshots_refresh

    return {str(project_id): rows for project_id, rows in dashboard_snapshots_refresh().items()}


class _ImportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Whatever stopped the import (a time limit, a lost database), its page says it failed."""
        from labeling.services.imports import import_fail  # local: see the module docstring

        import_fail(import_id=args[0] if args else kwargs["import_id"], message=f"{type(exc).__name__}: {exc}")


@shared_task(base=_ImportTask, acks_late=False, soft_time_limit=1800, time_limit=1800 + 60)
def import_execute_task(import_id: int) -> None:
    """A big file from the import page (labeling/services/imports.py), all or nothing, with progress."""
    from labeling.services.imports import import_execute  # local: see the module docstring

    import_execute(import_id=import_id)
