"""A reward fit asking for `gpus: 2`, through a real Celery worker: the worker starts it under torchrun (two gloo ranks
on this CPU machine), rank 0 alone reports, evaluates and saves, the figures are those of one process fitting the same
snapshot, and a stop request ends both ranks."""
from pathlib import Path

import pytest
import torch
from django.db import connection

from labeling.models import Comparison, Query
from labeling.roles import RESEARCHER
from training.models import Checkpoint, RunMetric, TrainingRun
from training.rlhf.models import RewardModel
from training.services import andon_pull, run_create
from training.services.execute import run_execute
from tests.factories import UserFactory
from tests.training.conftest import wait_for
from tests.training.helpers import FAST_REWARD, labeled_project

pytestmark = [pytest.mark.slow, pytest.mark.worker]
Status = TrainingRun.Status


def _project(contractor):
    project = labeled_project(contractor, UserFactory(username="r-ranks", role=RESEARCHER), n=48, n_calibration=8)
    # A share of the labeled queries on the valid split: rank 0 measures the held-out accuracy after the fit.
    train = Comparison.objects.filter(project=project, is_calibration=False).order_by("id")
    Query.objects.filter(id__in=[c.query_id for c in train[::4]]).update(split=Query.Split.VALID)
    return project


@pytest.fixture
def metric_writes():
    """(key, step) of every metric row any process tried to insert. The table's unique key drops a repeat silently
    (ignore_conflicts), so only a BEFORE INSERT trigger sees a second rank reporting the same point."""
    if connection.vendor != "postgresql":
        yield None
        return
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE TABLE test_metric_writes (run_id integer, key text, step integer);
            CREATE FUNCTION test_metric_write() RETURNS trigger AS $$
            BEGIN INSERT INTO test_metric_writes VALUES (NEW.run_id, NEW.key, NEW.step); RETURN NEW; END
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_metric_write BEFORE INSERT ON training_runmetric
                FOR EACH ROW EXECUTE FUNCTION test_metric_write();""")

    def writes(run_id: int) -> list[tuple[str, int]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT key, step FROM test_metric_writes WHERE run_id = %s", [run_id])
            return sorted(cursor.fetchall())

    yield writes
    with connection.cursor() as cursor:  # the test database outlives this test: leave it as it was
        cursor.execute("DROP TRIGGER test_metric_write ON training_runmetric; DROP FUNCTION test_metric_write();"
                       "DROP TABLE test_metric_writes;")


def _metrics(run: TrainingRun) -> dict[tuple[str, int], float]:
    return {(key, step): value for key, step, value in RunMetric.objects.filter(run=run).values_list(
        "key", "step", "value")}


def _no_ranks_left(run: TrainingRun, worker) -> bool:
    """No `training.ranks RUN_ID` process of this test's worker is alive. Matched on the worker's RLHF_VAR_DIR too:
    another test session on this machine may be running ranks of a run with the same id in its own database."""
    marker = f"RLHF_VAR_DIR={worker.tmp}".encode()
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if b"training.ranks" in args and args[args.index(b"training.ranks") + 1:][:1] == [str(run.id).encode()] \
                    and marker in (proc / "environ").read_bytes().split(b"\0"):
                return False
        except OSError:  # gone meanwhile, or another user's
            continue
    return True


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_two_rank_fit_equals_one_process_and_rank_0_alone_reports(live_worker, contractor, metric_writes, strategy):
    project = _project(contractor)
    config = {**FAST_REWARD, "strategy": strategy}
    alone = run_create(project=project, kind="fit_reward", base_model="tiny", seed=5, config=config, enqueue=False)
    ranks = run_create(project=project, kind="fit_reward", base_model="tiny", seed=5, config=config,
                       product={"gpus": 2})
    live_worker.start()
    assert run_execute(run_id=alone.id) == Status.FINISHED  # here, in one process, while the worker starts up
    wait_for(lambda: TrainingRun.objects.get(id=ranks.id).status in (Status.FINISHED, Status.FAILED), timeout=180,
             message="the two-rank fit ended")
    ranks.refresh_from_db()
    assert ranks.status == Status.FINISHED, ranks.error
    assert "2 ranks under torchrun" in live_worker.logs()

    # The same points, the same figures: the fit's own, then rank 0's calibration and held-out evaluation.
    expected, got = _metrics(alone), _metrics(ranks)
    assert set(got) == set(expected)
    assert {"calibration/accuracy", "reward/valid_accuracy", "normalization/gain"} <= {key for key, _ in got}
    for point, value in expected.items():
        assert got[point] == pytest.approx(value, rel=1e-4, abs=1e-5), point
    if metric_writes is not None:  # each point written once: by rank 0, never by rank 1 as well
        assert metric_writes(ranks.id) == sorted(got)

    # One checkpoint, rank 0's: the whole model (FSDP's shards gathered), the one process's weights.
    checkpoint = Checkpoint.objects.get(run=ranks)
    assert checkpoint.is_final
    saved, _ = RewardModel.from_pretrained(checkpoint.path)
    reference, _ = RewardModel.from_pretrained(Checkpoint.objects.get(run=alone).path)
    for (name, weight), (_, ref) in zip(saved.state_dict().items(), reference.state_dict().items(), strict=True):
        torch.testing.assert_close(weight, ref, atol=1e-4, rtol=1e-4, msg=name)
    alone.refresh_from_db()
    assert ranks.report["reward_data"]["valid_accuracy"] == alone.report["reward_data"]["valid_accuracy"]
    assert _no_ranks_left(ranks, live_worker)


def test_a_stop_request_ends_both_ranks(live_worker, contractor):
    project = _project(contractor)
    config = {**FAST_REWARD, "epochs": 2000, "log_every": 1}  # far longer than the test waits
    run = run_create(project=project, kind="fit_reward", base_model="tiny", seed=5, config=config,
                     product={"gpus": 2})
    live_worker.start()
    wait_for(lambda: RunMetric.objects.filter(run=run, key="train/loss", step__gte=2).exists(), timeout=120,
             message="the two ranks fitting")
    assert not _no_ranks_left(run, live_worker)  # both ranks at work: what the check below looks for
    andon_pull(run=run, reason="test: stop both ranks", tripwire="test")
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status in (Status.STOPPED, Status.FAILED), timeout=60,
             message="stopped")
    run.refresh_from_db()
    assert run.status == Status.STOPPED, run.error
    assert not Checkpoint.objects.filter(run=run).exists()  # a stopped fit saves nothing, on either rank
    assert _no_ranks_left(run, live_worker)
