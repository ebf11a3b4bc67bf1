"""The demo data of `python3 manage.py demo`: users of each role and two small projects.

Idempotent: running it again leaves existing data alone. Texts come from a fixture written for
the demo (labeling/fixtures/demo.json), in the flavour of the 2019 and 2020 tasks. Each project's
calibration slice is answered at once, by the researchers (`researcher` and `admin`) and by the
project's simulated labelers, all with the simulated labelers' scorer, so that every dashboard
table has figures on first start. Rounds start from `base_model` when given: the command passes
the pretrained demo base (training/services/demo_base.py).
"""
from __future__ import annotations

import itertools
import json
import random
import zlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from labeling.models import Comparison, Label, Project, Query, Sample
from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER, roles_ensure, user_set_role
from labeling.selectors.instructions import instructions_current, instructions_is_acknowledged
from labeling.services import comparison_create, instructions_publish, project_create
from labeling.services.instructions import instructions_acknowledge
from labeling.services.labels import label_submit
from labeling.services.serving import comparison_next_for_labeler
from labeling.services.simulation import (
    LabelerSpec,
    simulate_labeling,
    simulated_choice,
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


# Small enough that one round (reward fit → PPO → sampling) takes about a minute on 2 CPU cores. The
# base is "tiny" (random weights) until demo_seed(base_model=…) names the pretrained demo base. The
# reward averages its head over the response (`mean`: a small byte model's last token cannot carry
# word sentiment) and PPO takes steps large enough to move in 16 updates (training/rlhf/experiment.py).
DEMO_TRAINING = {
    "base_model": "tiny",
    "task": {"query_length": 64, "response_length": 32, "temperature": 0.7},
    "reward": {"epochs": 4, "lr": 1e-3, "batch_size": 8, "readout": "mean", "normalize_samples": 64, "log_every": 2},
    "ppo": {"total_episodes": 512, "batch_size": 32, "lr": 1e-4, "kl_coef": 0.05, "save_every": 4},
    "sample": {"n_queries": 12},
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
        comparison_create(project=project, query=query, samples=pair, is_calibration=(n % 2 == 0), batch="demo")


DEMO_SLUGS = ("positive-continuations", "tldr-summaries")


def demo_seed(*, base_model: str | None = None) -> list[DemoLogin]:
    """Create the demo users and projects if they do not exist yet, answer their calibration slices
    (once), and with `base_model` point the demo projects' rounds at it; return the logins."""
    roles_ensure()
    data = json.loads(FIXTURE.read_text())
    with transaction.atomic():
        _users()
        researcher = get_user_model().objects.get(username="researcher")
        if not Project.objects.filter(slug="positive-continuations").exists():
            _continuation_project(data["continuation"], researcher)
        if not Project.objects.filter(slug="tldr-summaries").exists():
            _summarization_project(data["summarization"], researcher)
        for project in Project.objects.filter(slug__in=DEMO_SLUGS).order_by("id"):
            demo_calibration_answer(project=project)
            if base_model:
                _base_model_set(project, base_model)
    return DEMO_LOGINS


def _base_model_set(project: Project, base_model: str) -> None:
    """Point the project's rounds at `base_model` unless a researcher chose another base: only the
    untrained default or an earlier demo base (another corpus or settings) is replaced."""
    from training.services.demo_base import demo_base_is  # no torch: the module imports it in functions

    ts = dict(project.training_settings or {})
    current = ts.get("base_model", DEMO_TRAINING["base_model"])
    if current != base_model and (current == DEMO_TRAINING["base_model"] or demo_base_is(current)):
        ts["base_model"] = base_model
        Project.objects.filter(id=project.id).update(training_settings=ts)


# --- the calibration slice, answered ----------------------------------------------------------

# The researchers answer like the project's simulated labelers, with the same scorer: `researcher`
# always picks the best-scored sample, `admin` (a second researcher, so the dashboard has
# researcher–researcher agreement) with the labelers' own small noise.
DEMO_RESEARCHER_TEMPERATURES = {"researcher": 0.0, "admin": 0.1}


@dataclass(frozen=True)
class _ScorerAnswers:
    """A person answering with a simulated labeler's scorer: what `simulated_choice` reads of a labeler."""

    user: object
    kind: str
    seed: int
    temperature: float


def demo_calibration_answer(*, project: Project) -> int:
    """Answer the project's calibration slice once (nothing when it has labels already): each demo
    researcher, then each simulated labeler of the project's kind, labels every calibration
    comparison through the labeling services. Returns how many labels were written."""
    calibration = project.comparisons.filter(is_calibration=True, status=Comparison.Status.ACTIVE).count()
    if not calibration or Label.objects.filter(comparison__project=project, comparison__is_calibration=True).exists():
        return 0
    kind = demo_simulated_spec(project).kind
    written = 0
    users = get_user_model().objects.filter(username__in=DEMO_RESEARCHER_TEMPERATURES).order_by("username")
    for user in users:
        person = _ScorerAnswers(user=user, kind=kind, seed=zlib.crc32(f"demo:{user.username}".encode()),
                                temperature=DEMO_RESEARCHER_TEMPERATURES[user.username])
        written += _answer_calibration(project, person, calibration)
    # Labelers are served calibration comparisons at the project's calibration_share; for these few
    # labels every one of them should be one, so the share is 1 while they answer (same transaction).
    share = project.calibration_share
    Project.objects.filter(id=project.id).update(calibration_share=1.0)
    project.calibration_share = 1.0
    try:
        labelers = simulated_labelers_ensure(project=project, specs=[demo_simulated_spec(project)])
        written += simulate_labeling(project=project, labelers=labelers, n=calibration * len(labelers)).labeled
    finally:
        Project.objects.filter(id=project.id).update(calibration_share=share)
        project.calibration_share = share
    return written


def _answer_calibration(project: Project, person: _ScorerAnswers, n: int) -> int:
    """`person` (a researcher: served calibration comparisons first) answers up to `n` of them."""
    instructions = instructions_current(project)
    if instructions is not None and not instructions_is_acknowledged(instructions=instructions, user=person.user):
        instructions_acknowledge(instructions=instructions, user=person.user)
    written = 0
    for _ in range(n):
        assignment = comparison_next_for_labeler(project=project, labeler=person.user)
        if assignment is None:
            break
        answer = simulated_choice(person, assignment)
        # Submitted at the end of the simulated reading time, as label_submit's timer check expects.
        now = max(timezone.now(), assignment.leased_at + timedelta(milliseconds=answer.duration_ms))
        written += label_submit(assignment_id=assignment.id, labeler=person.user, answer=answer, now=now)[1]
    return written


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
