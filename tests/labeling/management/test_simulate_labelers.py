"""`manage.py simulate_labelers`: arguments, errors (exit 1, nothing written), Ctrl+C, summary."""
import io
import os
import signal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.management.commands.simulate_labelers import Command
from labeling.models import Assignment, Comparison, InstructionsAck, Label, SimulatedLabeler
from labeling.services import instructions_publish
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("simulate_labelers", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def comparisons(project):
    instructions_publish(project=project, body="Pick the best.")
    return [make_comparison(project, labels_wanted=2) for _ in range(5)]


def test_labels_everything_with_several_kinds_and_prints_a_summary(project, comparisons):
    out, _ = _run("--project", project.slug, "--labeler", "sentiment:2", "--labeler", "copy",
                  "--temperature", "copy=0.5", "--seed", "7")
    assert Label.objects.count() == 10  # 5 comparisons × 2 labels wanted
    assert set(SimulatedLabeler.objects.values_list("user__username", "kind", "temperature")) == {
        ("sim-sentiment-1", "sentiment", 0.1), ("sim-sentiment-2", "sentiment", 0.1), ("sim-copy-1", "copy", 0.5)}
    assert InstructionsAck.objects.filter(user__username__startswith="sim-").count() == 3
    assert "done: 10 labels" in out
    assert "sim-copy-1: " in out and "(nothing left to label)" in out


def test_count_stops_early(project, comparisons):
    out, _ = _run("--project", project.slug, "--labeler", "random:3", "--count", "4")
    assert Label.objects.count() == 4 and "done: 4 labels" in out
    assert sorted(Label.objects.values_list("labeler__username", flat=True)) == [
        "sim-random-1", "sim-random-1", "sim-random-2", "sim-random-3"]


def test_seed_makes_runs_reproducible(project, comparisons):
    _run("--project", project.slug, "--labeler", "random", "--temperature", "random=1", "--seed", "11")
    first = dict(Label.objects.values_list("comparison_id", "chosen_index"))
    Label.objects.all().delete()
    Assignment.objects.all().delete()
    Comparison.objects.update(label_count=0, open_slots=2)
    _run("--project", project.slug, "--labeler", "random", "--seed", "11")
    assert dict(Label.objects.values_list("comparison_id", "chosen_index")) == first


@pytest.mark.parametrize(("args", "message"), [
    (["--project", "nope", "--labeler", "sentiment:1"], "No project with slug 'nope'"),
    (["--labeler", "grumpy:2"], "Unknown simulated labeler kind 'grumpy'"),
    (["--labeler", "sentiment:x"], "Malformed labeler spec"),
    (["--labeler", "sentiment:0"], "must be from 1 to"),
    (["--labeler", "sentiment:2:3"], "Malformed labeler spec"),
    (["--labeler", "sentiment", "--temperature", "sentiment"], "Malformed temperature"),
    (["--labeler", "sentiment", "--temperature", "sentiment=-1"], "Malformed temperature"),
    (["--labeler", "sentiment", "--temperature", "sentiment=hot"], "Malformed temperature"),
    (["--labeler", "sentiment", "--temperature", "copy=1"], "no --labeler asks for"),
    (["--labeler", "sentiment", "--rate", "fast"], "Malformed rate"),
    (["--labeler", "sentiment", "--rate", "0/s"], "Malformed rate"),
    (["--labeler", "sentiment", "--count", "0"], "--count must be at least 1"),
])
def test_bad_arguments_are_clear_errors_and_write_nothing(project, comparisons, args, message):
    if "--project" not in args:
        args = ["--project", project.slug, *args]
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not SimulatedLabeler.objects.exists() and not Label.objects.exists()


def test_a_persons_username_is_a_clear_error(project, comparisons):
    from tests.factories import UserFactory

    UserFactory(username="sim-length-1")
    with pytest.raises(CommandError, match="sim-length-1"):
        _run("--project", project.slug, "--labeler", "length")
    assert not SimulatedLabeler.objects.exists()


def test_rate_accepts_per_second_minute_and_hour():
    from labeling.services.simulation import rate_parse

    assert rate_parse("5/s") == 5 and rate_parse("2") == 2 and rate_parse("30/min") == 0.5
    assert rate_parse("3600/h") == 1 and rate_parse("0.5/s") == 0.5


def test_ctrl_c_stops_after_the_label_in_hand_with_a_summary(project, comparisons, monkeypatch):
    progress = Command.progress

    def interrupt_after_three(self, counts, labeler):
        progress(self, counts, labeler)
        if counts.labeled == 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Command, "progress", interrupt_after_three)
    handler = signal.getsignal(signal.SIGINT)
    out, err = _run("--project", project.slug, "--labeler", "random:2")
    assert Label.objects.count() == 3
    assert "stopped by Ctrl+C: 3 labels" in out and "Stopping after the label in hand" in err
    assert signal.getsignal(signal.SIGINT) is handler  # put back


def test_errors_exit_with_status_1_on_the_command_line(capsys):
    # What `manage.py simulate_labelers …` does with a CommandError: message on stderr, exit status 1.
    with pytest.raises(SystemExit) as exit_:
        Command().run_from_argv(["manage.py", "simulate_labelers", "--project", "no-such-project", "--labeler", "sentiment:1"])
    assert exit_.value.code == 1
    assert "No project with slug 'no-such-project'" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_and_still_prints_the_summary(project, comparisons, monkeypatch):
    import labeling.services.simulation as simulation

    submit = simulation.label_submit
    calls = []

    def interrupted_submit(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # mid-submit: this one interrupts
        return submit(**kwargs)

    monkeypatch.setattr(simulation, "label_submit", interrupted_submit)
    out, _ = _run("--project", project.slug, "--labeler", "random:2")
    assert Label.objects.count() == 2 and "stopped by Ctrl+C: 2 labels" in out


def test_realtime_holds_leases_for_the_reading_time(project, comparisons, monkeypatch):
    import labeling.services.simulation as simulation

    monkeypatch.setattr(simulation, "reading_time_ms", lambda texts, rng, context="": 150)
    out, _ = _run("--project", project.slug, "--labeler", "random:2", "--realtime")
    assert "done: 10 labels" in out
    for label in Label.objects.select_related("assignment"):
        assert (label.created_at - label.assignment.leased_at).total_seconds() >= label.duration_ms / 1000 == 0.15
