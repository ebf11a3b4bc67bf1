"""Automatic pulls: NaN losses, KL above the cap, flagged samples; and the SIGTERM escalation."""
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import Conflict
from labeling.models import Comparison, SampleFlag
from labeling.services import FlagInput, LabelInput, comparison_next_for_labeler, label_submit
from training.models import AndonPull, TrainingRun
from training.services import andon_escalate, andon_pull, run_claim, runs_reap
from training.services.reporter import RunReporter
from training.services.tripwires import DEFAULTS, check_metrics, tripwire_for
from tests.factories import TrainingRunFactory, UserFactory, make_comparison

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


def test_check_metrics_catches_nan_losses_and_kl_above_cap():
    assert check_metrics({"ppo/loss/policy": 0.1, "objective/kl": 3.0}, DEFAULTS) is None
    assert check_metrics({"ppo/loss/value": float("nan")}, DEFAULTS).startswith("nan_loss")
    assert check_metrics({"train/loss": float("inf")}, DEFAULTS).startswith("nan_loss")
    assert check_metrics({"objective/kl": 31.0}, DEFAULTS).startswith("kl_cap")
    assert check_metrics({"objective/kl": 31.0}, {**DEFAULTS, "kl_max": 40.0}) is None


def test_reporter_pulls_the_cord_on_a_kl_spike(project):
    run = TrainingRunFactory(project=project, product={"tripwires": {"kl_max": 5.0}})
    run_claim(run_id=run.id, owner="w1")
    reporter = RunReporter(run=run, owner="w1", tripwire=tripwire_for(run))
    assert reporter.on_step({"step": 1, "objective/kl": 1.0}) is True
    assert reporter.on_step({"step": 2, "objective/kl": 9.5}) is False
    pull = AndonPull.objects.get(run=run)
    assert pull.tripwire == "kl_cap" and pull.role == "tripwire"
    assert TrainingRun.objects.get(id=run.id).status == Status.STOP_REQUESTED


def test_flag_share_tripwire(project):
    run = TrainingRunFactory(project=project,
                             product={"tripwires": {"max_flag_share": 0.2, "min_labels_for_flag_share": 5}})
    run_claim(run_id=run.id, owner="w1")
    for i in range(6):
        comparison = make_comparison(project)
        Comparison.objects.filter(id=comparison.id).update(source_run=run)
        labeler = UserFactory(username=f"flagger{i}", role="contractor")
        a = comparison_next_for_labeler(project=project, labeler=labeler)
        flags = [FlagInput(position=0, note="harmful")] if i < 3 else []
        label_submit(assignment_id=a.id, labeler=labeler, answer=LabelInput(position=1, duration_ms=10, flags=flags))
    assert SampleFlag.objects.count() == 3
    reporter = RunReporter(run=run, owner="w1", tripwire=tripwire_for(run))
    for step in range(1, 6):  # the flag share is checked every fifth step
        reporter.on_step({"step": step, "objective/kl": 0.1})
    assert AndonPull.objects.get(run=run).tripwire == "flag_share"


def test_escalation_sends_sigterm_to_the_recorded_trainer_only_when_unresponsive(project, researcher, admin_user):
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = TrainingRunFactory(project=project)
        run_claim(run_id=run.id, owner="w1")
        TrainingRun.objects.filter(id=run.id).update(pid=trainer.pid, hostname=socket.gethostname())
        andon_pull(run=run, user=researcher, reason="stop it")
        with pytest.raises(Conflict):
            andon_escalate(run=run, user=admin_user)  # not unresponsive yet
        runs_reap(now=timezone.now() + timedelta(seconds=61))
        message = andon_escalate(run=run, user=admin_user)
        assert f"SIGTERM to trainer pid {trainer.pid}" in message
        assert trainer.wait(timeout=10) == -15
        assert "SIGTERM" in AndonPull.objects.get(run=run).resolution_note
    finally:
        if trainer.poll() is None:
            trainer.kill()
