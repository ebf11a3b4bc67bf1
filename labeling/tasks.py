"""Celery tasks of the labeling app: thin. They take ids, never instances, and call one service each.

The app's one import cycle, on purpose: services/simulation.py enqueues simulate_labeling_task and
the task runs that service. Both sides import inside the function, so neither module loads the other
at import time (the same as training/tasks.py and its services).
"""
from celery import shared_task


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
