"""Simulated labelers: their accounts, and labeling through the same services as people.

A simulated labeler leases with `comparison_next_for_labeler`, acknowledges instructions with
`instructions_acknowledge` and answers with `label_submit`, so its labels are stored like anyone
else's: only the account tells them apart. The choice is the softmax chooser of
`labeling/scorers.py`, seeded per (labeler seed, comparison), and drawn over canonical
indices: the same labeler picks the same sample of a comparison whatever order it was shown in
(for `position`, the scores themselves follow the display order).
"""
from __future__ import annotations

import math
import random
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from labeling.errors import Conflict, InvalidInput
from labeling.models import Assignment, ComparisonSample, Project, SimulatedLabeler
from labeling.roles import CONTRACTOR, PERM_LABEL, user_set_role
from labeling.scorers import KINDS, reading_time_ms, scores_for, softmax_choice
from labeling.selectors.instructions import instructions_current, instructions_is_acknowledged
from labeling.services.instructions import instructions_acknowledge
from labeling.services.labels import LabelInput, label_submit
from labeling.services.serving import comparison_next_for_labeler

MAX_ACCOUNTS_PER_KIND = 100
USERNAME_PREFIX = "sim-"


@dataclass(frozen=True)
class LabelerSpec:
    """`count` accounts of `kind`; `temperature` None keeps an existing account's (new ones: the kind's default)."""

    kind: str
    count: int = 1
    temperature: float | None = None


def labeler_spec_parse(value: str) -> LabelerSpec:
    """`KIND` or `KIND:COUNT` (e.g. `sentiment:5`) → LabelerSpec; InvalidInput when malformed."""
    match = re.fullmatch(r"\s*([a-z]+)\s*(?::\s*(\d+)\s*)?", value)
    if match is None:
        raise InvalidInput(f"Malformed labeler spec {value!r}: write KIND or KIND:COUNT, e.g. sentiment:5.", field="labeler")
    kind, count = match.group(1), int(match.group(2) or 1)
    _check_kind(kind)
    if not 1 <= count <= MAX_ACCOUNTS_PER_KIND:
        raise InvalidInput(f"Count in {value!r} must be from 1 to {MAX_ACCOUNTS_PER_KIND}.", field="labeler")
    return LabelerSpec(kind=kind, count=count)


def temperature_parse(value: str) -> tuple[str, float]:
    """`KIND=T` (e.g. `copy=0.5`) → (kind, T); InvalidInput when malformed or T < 0."""
    kind, sep, number = value.partition("=")
    kind = kind.strip()
    try:
        temperature = float(number)
    except ValueError:
        temperature = None
    if not sep or temperature is None or not 0 <= temperature < float("inf"):
        raise InvalidInput(f"Malformed temperature {value!r}: write KIND=T with T ≥ 0, e.g. copy=0.5.", field="temperature")
    _check_kind(kind)
    return kind, temperature


def rate_parse(value: str) -> float:
    """`N`, `N/s`, `N/min` or `N/h` → labels per second; InvalidInput unless positive and finite."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|sec|min|m|h))?\s*", value)
    per = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    rate = float(match.group(1)) / per[match.group(2)] if match else 0.0
    if rate <= 0:
        raise InvalidInput(f"Malformed rate {value!r}: write a positive N/s, N/min or N/h, e.g. 5/s.", field="rate")
    return rate


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"Unknown simulated labeler kind {kind!r}; choose from {', '.join(KINDS)}.", field="labeler")


def _account_seed(base_seed: int, username: str) -> int:
    # Stable across processes (unlike hash()), distinct per account, reproducible from --seed.
    return zlib.crc32(f"{base_seed}:{username}".encode())


def simulated_labelers_ensure(*, project: Project, specs: list[LabelerSpec],
                              seed: int | None = None) -> list[SimulatedLabeler]:
    """Create (or reuse) accounts `sim-KIND-1..COUNT` for the specs; return them in spec order.

    New accounts are contractors with an unusable password, the kind's default temperature unless
    the spec gives one, and a seed derived from `seed` (default 0) and the username. An existing
    account keeps its temperature and seed unless the spec's temperature or `seed` is given.
    Each acknowledges the project's current instructions. All or nothing: a username taken by
    a person is InvalidInput and nothing is written.
    """
    for spec in specs:
        _check_kind(spec.kind)
        if spec.temperature is not None and not 0 <= spec.temperature < float("inf"):
            raise InvalidInput(f"Temperature of {spec.kind} must be ≥ 0.", field="temperature")
    User = get_user_model()
    labelers: list[SimulatedLabeler] = []
    with transaction.atomic():
        for spec in specs:
            for i in range(1, spec.count + 1):
                username = f"{USERNAME_PREFIX}{spec.kind}-{i}"
                if any(labeler.user.username == username for labeler in labelers):
                    continue  # `sentiment:2` and `sentiment:3` are three accounts, not five
                user, created = User.objects.get_or_create(username=username)
                if created:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
                    user_set_role(user, CONTRACTOR)
                    labeler = SimulatedLabeler.objects.create(
                        user=user, kind=spec.kind, seed=_account_seed(seed or 0, username),
                        temperature=KINDS[spec.kind].default_temperature if spec.temperature is None else spec.temperature,
                    )
                else:
                    labeler = SimulatedLabeler.objects.select_for_update().filter(user=user).first()
                    if labeler is None or labeler.kind != spec.kind:
                        raise InvalidInput(f"The username {username} belongs to an account that is not a simulated "
                                           f"{spec.kind} labeler.", field="labeler")
                    if spec.temperature is not None:
                        labeler.temperature = spec.temperature
                    if seed is not None:
                        labeler.seed = _account_seed(seed, username)
                    labeler.save(update_fields=["temperature", "seed"])
                labelers.append(labeler)
                _acknowledge_current(project, user)
    return labelers


def _acknowledge_current(project: Project, user) -> bool:
    """Acknowledge the current instructions if not yet done; True when it had to."""
    instructions = instructions_current(project)
    if instructions is None or instructions_is_acknowledged(instructions=instructions, user=user):
        return False
    instructions_acknowledge(instructions=instructions, user=user)
    return True


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts of at most `burst`.

    `clock` and `sleep` are injectable so tests run without waiting.
    """

    def __init__(self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self.tokens = burst
        self.last = clock()

    def acquire(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Take a token, sleeping until one is there; False (no token taken) if `should_stop` turns true."""
        while True:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            if should_stop():
                return False
            self.sleep((1 - self.tokens) / self.rate)


@dataclass
class SimulationCounts:
    labeled: int = 0
    conflicts: int = 0  # leases that could not be answered (withdrawn by the andon cord, expired)
    per_labeler: dict[str, int] = field(default_factory=dict)
    exhausted: list[str] = field(default_factory=list)  # accounts that had nothing left to label
    refused: list[str] = field(default_factory=list)  # accounts deactivated or without the labeling permission
    stopped: bool = False  # `should_stop` ended the run early

    def as_dict(self) -> dict:
        return {"labeled": self.labeled, "conflicts": self.conflicts, "per_labeler": dict(self.per_labeler),
                "exhausted": list(self.exhausted), "refused": list(self.refused), "stopped": self.stopped}


def simulated_choice(labeler: SimulatedLabeler, assignment: Assignment) -> LabelInput:
    """What `labeler` answers to `assignment`: a display position and a plausible reading time."""
    entries = list(ComparisonSample.objects.filter(comparison_id=assignment.comparison_id)
                   .select_related("sample", "comparison__query", "comparison__project"))
    texts = {e.position: e.sample.text for e in entries}
    context = entries[0].comparison.query.context
    order = list(assignment.display_order)
    shown = [texts[c] for c in order]
    shown_scores = scores_for(labeler.kind, context=context, texts=shown)
    canonical_scores = [0.0] * len(order)
    for p, c in enumerate(order):
        canonical_scores[c] = shown_scores[p]
    rng = random.Random(f"{labeler.seed}:{assignment.comparison_id}")
    chosen = softmax_choice(canonical_scores, labeler.temperature, rng)
    lease_ms = settings.LABELING_LEASE_MINUTES * 60 * 1000
    duration = min(reading_time_ms(shown, rng, context=context), lease_ms // 2)
    position = order.index(chosen)
    project = entries[0].comparison.project
    confidence = ranking = likert = None
    if project.label_type == Project.LabelType.PAIRWISE_CONFIDENCE:
        confidence = simulated_confidence(canonical_scores, chosen, labeler.temperature, position)
    if project.label_type == Project.LabelType.RANKING:
        # The same noise as the choice (a fresh generator of the same seed): the chosen sample heads the ranking.
        canonical = simulated_ranking(canonical_scores, labeler.temperature,
                                      random.Random(f"{labeler.seed}:{assignment.comparison_id}"))
        ranking = [canonical[c] for c in order]
    if project.likert_axes:
        likert = {axis: [simulated_rating(score) for score in shown_scores] for axis in project.likert_axes}
    return LabelInput(position=position, duration_ms=duration, confidence=confidence, ranking=ranking, likert=likert,
                      none_acceptable=project.allow_none_acceptable and max(canonical_scores) < 0)


def simulated_ranking(scores: list[float], temperature: float, rng: random.Random) -> list[int]:
    """A simulated labeler's ranking of the samples (dense ranks, 1 = best, canonical): a Plackett–Luce draw at
    its temperature by Gumbel-top-k (sorting score/T + the Gumbel noise softmax_choice draws, so with the same
    generator its first is softmax_choice's pick); at T = 0 the order of the scores, equal scores tied (all equal:
    the noise orders them, as softmax_choice breaks ties, since a ranking must place one sample above another)."""
    noise = [-math.log(-math.log(max(rng.random(), 1e-300))) for _ in scores]
    keys = scores if temperature == 0 else [s / temperature + g for s, g in zip(scores, noise, strict=True)]
    if len(set(keys)) == 1:
        keys = noise
    distinct = sorted(set(keys), reverse=True)
    return [distinct.index(key) + 1 for key in keys]


def simulated_rating(score: float) -> int:
    """A 1–7 Likert rating of one sample from its scorer's score (normalised, about −1…1: 0 → 4, ±1 → 7 or 1)."""
    return 1 + round(6 / (1 + math.exp(-4 * score)))


def simulated_confidence(scores: list[float], chosen: int, temperature: float, position: int) -> int:
    """The 9-point answer of a simulated labeler on a pair, as shown: as sure as its own softmax makes its choice
    (p of the chosen sample from 1/2 to 1 → 0 to 4 points from the middle), on the side it chose (shown A: 1–5,
    shown B: 5–9)."""
    gap = scores[chosen] - scores[1 - chosen]
    sure = 1.0 if temperature == 0 else 1 / (1 + math.exp(-gap / temperature))
    steps = max(0, min(4, round((max(sure, 0.5) - 0.5) * 8)))
    return 5 - steps if position == 0 else 5 + steps


def _label_one(labeler: SimulatedLabeler, assignment: Assignment, project: Project,
               answer: LabelInput | None = None) -> bool:
    """Answer one lease; True when a new label was stored."""
    answer = answer or simulated_choice(labeler, assignment)
    # The simulated reading time is reported as the client's timer; submitting "at" the end of it
    # makes label_submit's plausibility check (timer ≤ server time + 5 s) accept it, as for a person.
    now = max(timezone.now(), assignment.leased_at + timedelta(milliseconds=answer.duration_ms))
    for _attempt in range(2):
        try:
            _, created = label_submit(assignment_id=assignment.id, labeler=labeler.user, answer=answer, now=now)
            return created
        except Conflict:
            # New instructions published mid-run: read them (as a person would) and answer again.
            if not _acknowledge_current(project, labeler.user):
                raise
    return False


def simulate_labeling(*, project: Project, labelers: list[SimulatedLabeler], n: int | None = None,
                      rate: float | None = None, stop_when_empty: bool = True, realtime: bool = False,
                      poll_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep, should_stop: Callable[[], bool] = lambda: False,
                      on_label: Callable[[SimulationCounts, SimulatedLabeler], None] | None = None,
                      counts: SimulationCounts | None = None) -> SimulationCounts:
    """Label up to `n` comparisons (None: all it can) round-robin over `labelers`, at most `rate` a second.

    An account with nothing left (it never labels a comparison twice) drops out; the others go on.
    When all are out: return, or with `stop_when_empty=False` wait `poll_seconds` for new
    comparisons (a round publishing samples) and go on. Answers come at once (only the stored
    duration is simulated) unless `realtime`: then each account holds its lease for its reading
    time before answering, as a person would (rehearsals, load tests). `should_stop` is checked
    between labels; each label is its own transaction, so stopping leaves nothing half-written
    (in realtime, leases being read stay leased: the same account answers them next run, or they
    expire). `counts` may be passed in to read progress while it runs.
    """
    if not labelers:
        raise InvalidInput("No simulated labelers given.", field="labeler")
    if n is not None and n < 0:
        raise InvalidInput("The number of labels must be ≥ 0.", field="count")
    counts = counts or SimulationCounts()
    allowed = []
    for labeler in labelers:
        counts.per_labeler.setdefault(labeler.user.username, 0)
        # As for people: an account an admin deactivated, or whose role was taken away, does not label.
        if not (labeler.user.is_active and labeler.user.has_perm(PERM_LABEL)):
            counts.refused.append(labeler.user.username)
            continue
        _acknowledge_current(project, labeler.user)
        allowed.append(labeler)
    if not allowed:
        return counts
    labelers = allowed
    loop = _loop_realtime if realtime else _loop_at_once
    return loop(project=project, labelers=labelers, n=n, stop_when_empty=stop_when_empty, poll_seconds=poll_seconds,
                bucket=TokenBucket(rate, clock=clock, sleep=sleep) if rate else None, clock=clock, sleep=sleep,
                should_stop=should_stop, on_label=on_label, counts=counts)


def _record(labeler: SimulatedLabeler, assignment: Assignment, project: Project, answer: LabelInput | None,
            counts: SimulationCounts, on_label) -> None:
    try:
        created = _label_one(labeler, assignment, project, answer)
    except Conflict:
        counts.conflicts += 1
        return
    if created:
        counts.labeled += 1
        counts.per_labeler[labeler.user.username] += 1
        if on_label is not None:
            on_label(counts, labeler)


def _exhausted(labeler: SimulatedLabeler, counts: SimulationCounts) -> None:
    if labeler.user.username not in counts.exhausted:
        counts.exhausted.append(labeler.user.username)


def _loop_at_once(*, project, labelers, n, stop_when_empty, poll_seconds, bucket, clock, sleep, should_stop, on_label,
                  counts) -> SimulationCounts:
    active = list(labelers)
    turn = 0
    while n is None or counts.labeled < n:
        if should_stop():
            counts.stopped = True
            break
        if not active:
            if stop_when_empty:
                break
            sleep(poll_seconds)
            active, turn = list(labelers), 0
            continue
        turn %= len(active)
        labeler = active[turn]
        if bucket is not None and not bucket.acquire(should_stop):
            counts.stopped = True
            break
        assignment = comparison_next_for_labeler(project=project, labeler=labeler.user)
        if assignment is None:
            active.pop(turn)  # the next account now sits at index `turn`
            _exhausted(labeler, counts)
            continue
        _record(labeler, assignment, project, None, counts, on_label)
        turn += 1
    return counts


def _loop_realtime(*, project, labelers, n, stop_when_empty, poll_seconds, bucket, clock, sleep, should_stop, on_label,
                   counts) -> SimulationCounts:
    reading: dict[int, tuple[SimulatedLabeler, Assignment, LabelInput, float]] = {}  # labeler id → lease, answer, due
    active = list(labelers)
    while not counts.stopped:
        if should_stop():
            counts.stopped = True
            break
        # 1. Answer what has been read long enough, earliest first.
        for key, (labeler, assignment, answer, due) in sorted(reading.items(), key=lambda item: item[1][3]):
            if due <= clock():
                del reading[key]
                _record(labeler, assignment, project, answer, counts, on_label)
        if n is not None and counts.labeled >= n:
            break
        # 2. Idle accounts take their next comparison, in turn, while labels are still wanted.
        for labeler in list(active):
            if labeler.id in reading or (n is not None and counts.labeled + len(reading) >= n):
                continue
            if bucket is not None and not bucket.acquire(should_stop):
                counts.stopped = True
                break
            assignment = comparison_next_for_labeler(project=project, labeler=labeler.user)
            if assignment is None:
                active.remove(labeler)
                _exhausted(labeler, counts)
                continue
            answer = simulated_choice(labeler, assignment)
            reading[labeler.id] = (labeler, assignment, answer, clock() + answer.duration_ms / 1000)
        # 3. Wait for the next answer to be due, or for new comparisons.
        if reading:
            sleep(max(0.0, min(due for *_, due in reading.values()) - clock()))
        elif not active:
            if stop_when_empty:
                break
            sleep(poll_seconds)
            active = list(labelers)
    return counts


def simulated_labeling_start(*, project: Project, specs: list[LabelerSpec], n: int,
                             rate: float | None = None) -> list[SimulatedLabeler]:
    """Ensure the accounts, then label `n` comparisons in the background (a Celery task on commit)."""
    from labeling.tasks import simulate_labeling_task  # local import: the task imports this module

    if n < 1:
        raise InvalidInput("The number of labels must be at least 1.", field="count")
    with transaction.atomic():
        labelers = simulated_labelers_ensure(project=project, specs=specs)
        ids = [labeler.id for labeler in labelers]
        transaction.on_commit(lambda: simulate_labeling_task.delay(project.id, ids, n, rate))
    return labelers
