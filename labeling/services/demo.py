"""The demo data of `python3 manage.py demo`: users of each role and two small projects.

Idempotent: running it again leaves existing data alone. Texts come from a fixture written for
the demo (labeling/fixtures/demo.json), in the flavour of the 2019 and 2020 tasks.
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.models import Project, Query, Sample
from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER, roles_ensure, user_set_role
from labeling.services import comparison_create, instructions_publish, project_create
from labeling.services.simulation import (
    LabelerSpec,
    simulate_labeling,
    simulated_labelers_ensure,
    simulated_labeling_start,
)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "demo.json"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


DEMO_LOGINS = [
    DemoLogin("contractor", "label-all-day", CONTRACTOR),
    DemoLogin("contractor2", "label-all-day", CONTRACTOR),
    DemoLogin("researcher", "agree-with-me", RESEARCHER),
    DemoLogin("admin", "pull-the-cord", ADMIN),
]


def _users() -> None:
    User = get_user_model()
    for login in DEMO_LOGINS:
        user, created = User.objects.get_or_create(username=login.username)
        if created:
            user.set_password(login.password)
            user.is_staff = login.role == ADMIN
            user.is_superuser = login.role == ADMIN
            user.save()
        user_set_role(user, login.role)


# Small enough that one round (reward fit → PPO → sampling) takes about a minute on 2 CPU cores.
DEMO_TRAINING = {
    "base_model": "tiny",
    "reward": {"epochs": 2, "lr": 1e-4, "batch_size": 8, "normalize_samples": 32, "query_length": 64,
               "response_length": 24, "log_every": 2},
    "ppo": {"total_episodes": 256, "batch_size": 32, "query_length": 64, "response_length": 24, "save_every": 2},
    "sample": {"n_queries": 12, "response_length": 24, "query_length": 64},
}


def _continuation_project(data: dict, researcher) -> None:
    project = project_create(
        name="Positive continuations", slug="positive-continuations", k=4, calibration_share=0.15,
        description="Pick the most positive continuation (the 2019 sentiment task).", created_by=researcher,
    )
    project.training_settings = DEMO_TRAINING
    project.save(update_fields=["training_settings"])
    instructions_publish(project=project, body=data["instructions"], author=researcher)
    rng = random.Random(2019)
    pool = data["continuations"]
    rounds: list[list[tuple[Query, list[Sample]]]] = [[] for _ in range(4)]
    for n, context in enumerate(data["contexts"]):
        query = Query.objects.create(project=project, context=context, external_id=f"story-{n}")
        samples = [Sample.objects.create(query=query, text=t, source="baseline:demo-writer") for t in pool]
        subsets = list(itertools.combinations(range(len(pool)), 4))
        for i, subset in enumerate(rng.sample(subsets, 4)):
            chosen = [samples[j] for j in subset]
            rng.shuffle(chosen)
            rounds[i].append((query, chosen))
    # Interleave queries so a labeler does not see the same context several times in a row.
    for i, batch in enumerate(rounds):
        for n, (query, chosen) in enumerate(batch):
            comparison_create(project=project, query=query, samples=chosen, is_calibration=(i == 0 and n % 3 == 0),
                              batch="demo")


def _summarization_project(data: dict, researcher) -> None:
    project = project_create(
        name="TL;DR summaries", slug="tldr-summaries", k=2, task_kind=Project.TaskKind.SUMMARIZATION,
        labels_per_comparison=2, calibration_share=0.15,
        description="Pick the better summary of a post (the 2020 pairwise task).", created_by=researcher,
    )
    project.training_settings = DEMO_TRAINING
    project.save(update_fields=["training_settings"])
    instructions_publish(project=project, body=data["instructions"], author=researcher)
    for n, item in enumerate(data["posts"]):
        query = Query.objects.create(project=project, context=item["post"], reference=item["good"], external_id=f"post-{n}")
        good = Sample.objects.create(query=query, text=item["good"], source="reference")
        bad = Sample.objects.create(query=query, text=item["bad"], source="baseline:lead-sentence")
        pair = [good, bad] if n % 2 else [bad, good]
        comparison_create(project=project, query=query, samples=pair, batch="demo")


def demo_seed() -> list[DemoLogin]:
    """Create the demo users and projects if they do not exist yet; return the logins."""
    roles_ensure()
    data = json.loads(FIXTURE.read_text())
    with transaction.atomic():
        _users()
        researcher = get_user_model().objects.get(username="researcher")
        if not Project.objects.filter(slug="positive-continuations").exists():
            _continuation_project(data["continuation"], researcher)
        if not Project.objects.filter(slug="tldr-summaries").exists():
            _summarization_project(data["summarization"], researcher)
    return DEMO_LOGINS


# Which simulated labeler stands in for people in each demo project: the continuation task is the
# 2019 sentiment task; the TL;DR project wants two labels per comparison, so two accounts.
DEMO_SIMULATED = {
    Project.TaskKind.CONTINUATION: LabelerSpec(kind="sentiment", count=2),
    Project.TaskKind.SUMMARIZATION: LabelerSpec(kind="length", count=2),
}
DEMO_SIMULATED_LABELS = 40


def demo_simulated_spec(project: Project) -> LabelerSpec:
    return DEMO_SIMULATED.get(project.task_kind, DEMO_SIMULATED[Project.TaskKind.CONTINUATION])


def demo_autolabel(*, project: Project, n: int = DEMO_SIMULATED_LABELS) -> int:
    """Simulated labelers (sentiment ones for the continuation project) label up to `n`
    comparisons now, in this process: enough labels to start a round. Returns how many."""
    labelers = simulated_labelers_ensure(project=project, specs=[demo_simulated_spec(project)])
    return simulate_labeling(project=project, labelers=labelers, n=n).labeled


def demo_autolabel_start(*, project: Project, n: int = DEMO_SIMULATED_LABELS) -> LabelerSpec:
    """The same in the background (a Celery task once the accounts are committed); returns the spec used."""
    spec = demo_simulated_spec(project)
    simulated_labeling_start(project=project, specs=[spec], n=n)
    return spec
