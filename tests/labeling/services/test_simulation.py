"""Simulated labelers' accounts and labeling: the same services as people, seeded, rate-limited."""
import pytest
from django.urls import reverse

from labeling.errors import InvalidInput
from labeling.models import Assignment, Comparison, InstructionsAck, Label, SimulatedLabeler
from labeling.services import (
    LabelInput,
    comparison_next_for_labeler,
    comparisons_withdraw,
    instructions_acknowledge,
    instructions_publish,
    label_submit,
)
from labeling.services.simulation import (
    LabelerSpec,
    SimulationCounts,
    TokenBucket,
    simulate_labeling,
    simulated_labeling_start,
    simulated_labelers_ensure,
)
from labeling.scorers import score_sentiment
from tests.factories import UserFactory, make_comparison

pytestmark = pytest.mark.django_db

MOODS = [
    " She laughed, hugged everyone and felt wonderfully happy.",
    " It was a horrible, miserable ending and he was furious.",
    " The bus arrived at noon.",
    " A lovely surprise: the best gift she had ever had.",
    " Everything went wrong; they were sad and afraid.",
    " He opened the window.",
    " What a great, joyful, beautiful morning it was!",
    " Nobody came, and the cold silence felt awful.",
]


def _comparisons(project, n, *, seed=0, texts=MOODS):
    """`n` comparisons of project.k texts drawn (seeded) from `texts`."""
    import random

    rng = random.Random(seed)
    return [make_comparison(project, texts=rng.sample(texts, project.k)) for _ in range(n)]


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------- accounts


def test_ensure_creates_contractor_accounts_with_unusable_passwords(project):
    labelers = simulated_labelers_ensure(
        project=project, specs=[LabelerSpec("sentiment", 2), LabelerSpec("copy", 1, temperature=0.5)], seed=3)
    assert [l.user.username for l in labelers] == ["sim-sentiment-1", "sim-sentiment-2", "sim-copy-1"]
    assert [l.temperature for l in labelers] == [0.1, 0.1, 0.5]
    assert len({l.seed for l in labelers}) == 3
    for labeler in labelers:
        assert not labeler.user.has_usable_password()
        assert labeler.user.has_perm("labeling.label_comparisons")
        assert not labeler.user.has_perm("labeling.view_research")


def test_ensure_reuses_accounts_and_only_changes_what_is_given(project):
    first = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1)], seed=1)[0]
    again = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1)])[0]
    assert (again.id, again.seed, again.temperature) == (first.id, first.seed, first.temperature)
    changed = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1, temperature=2.0)], seed=9)[0]
    assert changed.id == first.id and changed.temperature == 2.0 and changed.seed != first.seed
    assert SimulatedLabeler.objects.count() == 1


def test_ensure_does_not_list_an_account_twice(project):
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 2), LabelerSpec("copy", 3)])
    assert [l.user.username for l in labelers] == ["sim-copy-1", "sim-copy-2", "sim-copy-3"]


def test_ensure_refuses_a_persons_username_and_writes_nothing(project, django_user_model):
    UserFactory(username="sim-copy-2")
    with pytest.raises(InvalidInput, match="sim-copy-2"):
        simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1), LabelerSpec("copy", 2)])
    assert not SimulatedLabeler.objects.exists()
    assert list(django_user_model.objects.filter(username__startswith="sim-").values_list("username", flat=True)) == [
        "sim-copy-2"]


def test_ensure_refuses_unknown_kinds_and_negative_temperatures(project):
    with pytest.raises(InvalidInput, match="Unknown simulated labeler kind"):
        simulated_labelers_ensure(project=project, specs=[LabelerSpec("grumpy", 1)])
    with pytest.raises(InvalidInput, match="Temperature"):
        simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 1, temperature=-1)])
    assert not SimulatedLabeler.objects.exists()


# ---------------------------------------------------------------- labels as people's


def test_a_simulated_label_is_stored_like_a_persons(project, contractor):
    instructions = instructions_publish(project=project, body="Pick the most positive continuation.")
    make_comparison(project, labels_wanted=2, texts=MOODS[:4])
    # The person: acknowledge, lease, answer through the same services.
    instructions_acknowledge(instructions=instructions, user=contractor)
    lease = comparison_next_for_labeler(project=project, labeler=contractor)
    human, _ = label_submit(assignment_id=lease.id, labeler=contractor, answer=LabelInput(position=0, duration_ms=4200))
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1)])
    assert simulate_labeling(project=project, labelers=[labeler], n=5).labeled == 1
    sim = Label.objects.get(labeler=labeler.user)

    assert sim.comparison_id == human.comparison_id and sim.instructions_id == human.instructions_id == instructions.id
    assert InstructionsAck.objects.filter(user=labeler.user, instructions=instructions).exists()
    fields = [f.name for f in Label._meta.fields if f.name not in ("id", "assignment", "labeler", "created_at")]
    for name in fields:
        # The same fields filled (values may differ: what was chosen, how long it took).
        assert (getattr(sim, name) in (None, "")) == (getattr(human, name) in (None, "")), name
    assert sim.duration_ms > 500 and sim.skipped is False and sim.unsure is False
    assert sim.assignment.state == human.assignment.state == Assignment.State.SUBMITTED
    assert sorted(sim.assignment.display_order) == [0, 1, 2, 3]
    assert sim.display_position == list(sim.assignment.display_order).index(sim.chosen_index)
    comparison = Comparison.objects.get(id=sim.comparison_id)
    assert (comparison.label_count, comparison.open_slots) == (2, 0)


def test_sentiment_labels_at_temperature_zero_agree_with_vaders_argmax(project):
    comparisons = _comparisons(project, 12, seed=2019)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=0)])
    assert simulate_labeling(project=project, labelers=[labeler]).labeled == 12
    for comparison in comparisons:
        label = Label.objects.get(comparison=comparison)
        texts = [e.sample.text for e in comparison.entries.order_by("position").select_related("sample")]
        scores = [score_sentiment(t) for t in texts]
        assert scores[label.chosen_index] == max(scores)


def test_position_labeler_picks_slot_a_at_temperature_zero(project):
    _comparisons(project, 8)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("position", 1, temperature=0)])
    simulate_labeling(project=project, labelers=[labeler])
    labels = Label.objects.filter(labeler=labeler.user)
    assert labels.count() == 8 and {label.display_position for label in labels} == {0}


def test_a_hot_labeler_disagrees_with_its_scorer_sometimes(project):
    _comparisons(project, 30, seed=5)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=5.0)])
    simulate_labeling(project=project, labelers=[labeler])
    agree = 0
    for label in Label.objects.filter(labeler=labeler.user).select_related("comparison"):
        texts = [e.sample.text for e in label.comparison.entries.order_by("position").select_related("sample")]
        scores = [score_sentiment(t) for t in texts]
        agree += scores[label.chosen_index] == max(scores)
    assert 0 < agree < 30


def test_same_seed_same_canonical_choices_whatever_the_display_order(project, django_user_model):
    comparisons = _comparisons(project, 10, seed=1)
    Comparison.objects.filter(id__in=[c.id for c in comparisons]).update(labels_wanted=2, open_slots=2)
    (a,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1, temperature=1.0)])
    simulate_labeling(project=project, labelers=[a])
    # A second account with the same seed: other leases, other display orders, same picks.
    twin_user = UserFactory(username="twin", role="contractor")
    twin = SimulatedLabeler.objects.create(user=twin_user, kind="length", temperature=1.0, seed=a.seed)
    simulate_labeling(project=project, labelers=[twin])
    mine = dict(Label.objects.filter(labeler=a.user).values_list("comparison_id", "chosen_index"))
    theirs = dict(Label.objects.filter(labeler=twin_user).values_list("comparison_id", "chosen_index"))
    assert len(mine) == 10 and mine == theirs


# ---------------------------------------------------------------- the loop


def test_round_robin_and_the_others_go_on_when_one_has_nothing_left(project):
    _comparisons(project, 6)
    Comparison.objects.update(labels_wanted=2, open_slots=2)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 3)])
    order = []
    counts = simulate_labeling(project=project, labelers=labelers, on_label=lambda c, l: order.append(l.user.username))
    # 12 slots, 3 accounts, none labels a comparison twice.
    assert counts.labeled == 12 and sum(counts.per_labeler.values()) == 12
    assert order[:3] == ["sim-random-1", "sim-random-2", "sim-random-3"]
    assert set(counts.exhausted) == {"sim-random-1", "sim-random-2", "sim-random-3"}
    assert Label.objects.count() == 12
    assert Label.objects.values("comparison", "labeler").distinct().count() == 12


def test_when_one_account_is_done_the_others_continue(project):
    comparisons = _comparisons(project, 4)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 2)])
    # The first account already labeled everything a person would let it (say, in an earlier run).
    for comparison in comparisons[:3]:
        Comparison.objects.filter(id=comparison.id).update(labels_wanted=2, open_slots=2)
    simulate_labeling(project=project, labelers=labelers[:1])
    counts = simulate_labeling(project=project, labelers=labelers)
    assert counts.per_labeler == {"sim-random-1": 0, "sim-random-2": 3}
    assert counts.exhausted == ["sim-random-1", "sim-random-2"]


def test_n_limits_the_labels(project):
    _comparisons(project, 6)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 2)])
    assert simulate_labeling(project=project, labelers=labelers, n=4).labeled == 4
    assert Label.objects.count() == 4 and Comparison.objects.filter(open_slots=1).count() == 2


def test_withdrawn_leases_are_counted_and_skipped(project):
    comparisons = _comparisons(project, 3)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1)])
    # The account holds a lease (an earlier run was killed) when the andon cord withdraws it.
    lease = comparison_next_for_labeler(project=project, labeler=labeler.user)
    comparisons_withdraw(comparison_ids=[lease.comparison_id])
    counts = simulate_labeling(project=project, labelers=[labeler])
    assert counts.labeled == 2 and not Label.objects.filter(comparison_id=lease.comparison_id).exists()
    assert set(Label.objects.values_list("comparison_id", flat=True)) == {c.id for c in comparisons} - {lease.comparison_id}


def test_a_lease_left_by_a_killed_run_is_answered_by_the_next(project):
    comparisons = _comparisons(project, 2)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 1)])
    lease = comparison_next_for_labeler(project=project, labeler=labeler.user)
    assert simulate_labeling(project=project, labelers=[labeler]).labeled == 2
    assert Label.objects.get(assignment=lease).comparison_id == comparisons[0].id


def test_new_instructions_mid_run_are_acknowledged(project):
    instructions_publish(project=project, body="v1")
    _comparisons(project, 4)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1)])

    def publish_after_two(counts, _labeler):
        if counts.labeled == 2:
            instructions_publish(project=project, body="v2")

    counts = simulate_labeling(project=project, labelers=[labeler], on_label=publish_after_two)
    assert counts.labeled == 4
    versions = list(Label.objects.filter(labeler=labeler.user).order_by("id").values_list("instructions__version", flat=True))
    assert versions == [1, 1, 2, 2]


def test_should_stop_ends_between_labels(project):
    _comparisons(project, 5)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 1)])
    counts = SimulationCounts()
    result = simulate_labeling(project=project, labelers=labelers, should_stop=lambda: counts.labeled >= 2, counts=counts)
    assert result is counts and counts.stopped and counts.labeled == 2 and Label.objects.count() == 2
    assert not Assignment.objects.filter(state=Assignment.State.LEASED).exists()


def test_waiting_for_new_comparisons_when_everything_is_labeled(project):
    _comparisons(project, 1)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 1)])
    clock = FakeClock()

    def publish_then_sleep(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:
            _comparisons(project, 2, seed=4)  # a round publishes new comparisons

    counts = simulate_labeling(project=project, labelers=labelers, n=3, stop_when_empty=False, poll_seconds=5,
                               clock=clock, sleep=publish_then_sleep)
    assert counts.labeled == 3 and clock.sleeps == [5]


# ---------------------------------------------------------------- rate limiting


def test_token_bucket_spaces_acquisitions_without_real_sleeping():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    stamps = []
    for _ in range(9):
        bucket.acquire()
        stamps.append(clock.now - start)
    assert stamps[0] == 0 and stamps[-1] == pytest.approx(2.0)
    assert all(b - a == pytest.approx(0.25) for a, b in zip(stamps, stamps[1:]))


def test_token_bucket_does_not_bank_idle_time_beyond_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=1.0, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    clock.now += 60  # idle a minute
    bucket.acquire()
    bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]


def test_token_bucket_gives_up_waiting_when_told_to_stop():
    clock = FakeClock()
    bucket = TokenBucket(0.01, clock=clock, sleep=clock.sleep)
    assert bucket.acquire() is True
    assert bucket.acquire(should_stop=lambda: True) is False and clock.sleeps == []


def test_simulate_labeling_respects_the_rate(project):
    _comparisons(project, 6)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 2)])
    clock = FakeClock()
    start = clock.now
    stamps = []
    counts = simulate_labeling(project=project, labelers=labelers, n=6, rate=3.0, clock=clock, sleep=clock.sleep,
                               on_label=lambda c, l: stamps.append(clock.now - start))
    assert counts.labeled == 6
    assert stamps == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3])


# ---------------------------------------------------------------- in the background


def test_start_enqueues_on_commit_and_the_task_labels(project, django_capture_on_commit_callbacks):
    _comparisons(project, 5)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        simulated_labeling_start(project=project, specs=[LabelerSpec("sentiment", 2)], n=3)
    assert len(callbacks) == 1 and not Label.objects.exists()  # nothing runs before the commit
    callbacks[0]()  # CELERY_TASK_ALWAYS_EAGER: the task runs here
    assert Label.objects.count() == 3
    assert set(Label.objects.values_list("labeler__username", flat=True)) == {"sim-sentiment-1", "sim-sentiment-2"}


def test_start_refuses_zero_labels(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(InvalidInput):
        simulated_labeling_start(project=project, specs=[LabelerSpec("sentiment", 1)], n=0)
    assert callbacks == [] and not SimulatedLabeler.objects.exists()


def test_task_fetches_by_id(project):
    from labeling.tasks import simulate_labeling_task

    _comparisons(project, 3)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 1)])
    result = simulate_labeling_task.delay(project.id, [l.id for l in labelers], 2)
    assert result.get()["labeled"] == 2 and Label.objects.count() == 2


def test_task_goes_to_the_default_queue_not_the_training_one():
    from config.celery import app
    from labeling.tasks import simulate_labeling_task

    assert app.amqp.router.route({}, simulate_labeling_task.name)["queue"].name == "default"


# ---------------------------------------------------------------- the demo button


def test_demo_button_starts_simulated_sentiment_labelers(client, researcher, project, django_capture_on_commit_callbacks):
    _comparisons(project, 5)
    client.force_login(researcher)
    url = reverse("training-demo-autolabel", kwargs={"slug": project.slug})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"simulated sentiment labelers" in response.content
    assert Label.objects.filter(labeler__simulated_labeler__kind="sentiment").count() == 5
    page = client.get(reverse("training-project-runs", kwargs={"slug": project.slug}))
    assert b"Simulated labelers label 40 comparisons" in page.content


def test_demo_button_is_for_researchers_only(client, contractor, project):
    client.force_login(contractor)
    response = client.post(reverse("training-demo-autolabel", kwargs={"slug": project.slug}))
    assert response.status_code == 403 and not SimulatedLabeler.objects.exists()


# ---------------------------------------------------------------- the REST API path


def test_a_simulated_labeler_can_label_through_the_rest_api(project):
    """An outside process can play a simulated account: token auth, lease, score what is shown, answer."""
    import random

    from rest_framework.test import APIClient

    from labeling.scorers import scores_for, softmax_choice

    instructions_publish(project=project, body="Pick the most positive one.")
    _comparisons(project, 1)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=0)])
    client = APIClient()
    client.force_authenticate(labeler.user)
    shown = client.post(reverse("api-assignment-next", kwargs={"project_slug": project.slug})).json()
    texts = [s["text"] for s in sorted(shown["samples"], key=lambda s: s["position"])]
    position = softmax_choice(scores_for("sentiment", context=shown["context"], texts=texts), 0, random.Random(0))
    response = client.post(reverse("api-label-create", kwargs={"assignment_id": shown["id"]}),
                           {"position": position, "duration_ms": 3000}, format="json")
    assert response.status_code == 201
    label = Label.objects.get(labeler=labeler.user)
    assert score_sentiment(label.comparison.entries.get(position=label.chosen_index).sample.text) == max(
        score_sentiment(t) for t in texts)
    assert label.instructions is not None and label.duration_ms > 0


def test_simulated_labels_count_in_progress_exports_and_training_data(project):
    from labeling.selectors import project_progress
    from labeling.selectors.exports import labels_export_rows
    from training.selectors import comparison_records_for_snapshot

    _comparisons(project, 4, seed=8)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=0)])
    simulate_labeling(project=project, labelers=labelers)
    assert project_progress(project)["labeled"] == 4
    rows = list(labels_export_rows(project=project, layout="2019"))
    records = comparison_records_for_snapshot(project=project, max_label_id=None)
    assert len(rows) == len(records) == 4
    for record in records:
        scores = [score_sentiment(t) for t in record.samples]
        assert scores[record.best] == max(scores)


def test_turns_pass_in_order_when_an_account_drops_out(project):
    _comparisons(project, 4)
    Comparison.objects.update(labels_wanted=3, open_slots=3)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 3)])
    simulate_labeling(project=project, labelers=labelers[2:], n=3)  # sim-random-3 has one comparison left
    order = []
    counts = simulate_labeling(project=project, labelers=labelers,
                               on_label=lambda c, l: order.append(int(l.user.username[-1])))
    assert order == [1, 2, 3, 1, 2, 1, 2, 1, 2]
    assert counts.exhausted[0] == "sim-random-3"


# ---------------------------------------------------------------- realtime: leases held while reading


def test_realtime_accounts_hold_their_leases_while_reading(project):
    _comparisons(project, 6)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 2)])
    clock = FakeClock()
    start = clock.now
    held_by_the_other = []

    def note(counts, labeler):
        other = labelers[1] if labeler == labelers[0] else labelers[0]
        held_by_the_other.append(Assignment.objects.filter(labeler=other.user, state=Assignment.State.LEASED).exists())

    counts = simulate_labeling(project=project, labelers=labelers, realtime=True, clock=clock, sleep=clock.sleep,
                               on_label=note)
    # The quicker reader labels more, as among people.
    assert counts.labeled == 6 and min(counts.per_labeler.values()) >= 1
    assert held_by_the_other[0] is True  # both were reading at once
    # Each account reads one comparison after the other; the two read side by side.
    per_account = [sum(Label.objects.filter(labeler=l.user).values_list("duration_ms", flat=True)) for l in labelers]
    assert clock.now - start == pytest.approx(max(per_account) / 1000)


def test_realtime_stops_at_n_without_leasing_more(project):
    _comparisons(project, 6)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 3)])
    clock = FakeClock()
    counts = simulate_labeling(project=project, labelers=labelers, n=2, realtime=True, clock=clock, sleep=clock.sleep)
    assert counts.labeled == 2 and Assignment.objects.count() == 2


def test_realtime_timestamps_agree_with_the_stored_duration(project, monkeypatch):
    import labeling.services.simulation as simulation

    monkeypatch.setattr(simulation, "reading_time_ms", lambda texts, rng, context="": 300)
    _comparisons(project, 2)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("copy", 1)])
    assert simulate_labeling(project=project, labelers=labelers, realtime=True).labeled == 2
    for label in Label.objects.select_related("assignment"):
        # As for a person: the label is stored at least its duration after the lease began.
        assert label.duration_ms == 300
        assert (label.created_at - label.assignment.leased_at).total_seconds() >= 0.3


def test_a_deactivated_account_does_not_label(project):
    _comparisons(project, 3)
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("random", 2)])
    labelers[0].user.is_active = False
    labelers[0].user.save(update_fields=["is_active"])
    counts = simulate_labeling(project=project, labelers=labelers)
    assert counts.refused == ["sim-random-1"] and counts.per_labeler == {"sim-random-1": 0, "sim-random-2": 3}
    labelers[1].user.groups.clear()
    labelers[1].user = type(labelers[1].user).objects.get(id=labelers[1].user.id)  # no cached permissions
    _comparisons(project, 1, seed=3)
    assert simulate_labeling(project=project, labelers=labelers[1:]).refused == ["sim-random-2"]
    assert Label.objects.count() == 3
