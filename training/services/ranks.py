"""A run over several GPUs: the training worker starts it under torchrun, one process per GPU.

A PPO or fit_reward run whose product settings ask for `gpus: N` (N > 1) is claimed by a worker as usual;
`execute_ranks` then starts `torchrun --standalone --nproc-per-node N -m training.ranks RUN_ID OWNER` and waits.
Every rank sets up Django, reads the run and does its share, dispatched on the run's kind (`rank_main`): PPO trains
through `ppo.ppo_train`, a reward fit through `reward_fit.reward_fit_train` (DDP or FSDP by the run's `strategy`).
Rank 0 alone writes to the database through a `RunReporter` holding the worker's lease owner: metrics, heartbeats
(so the lease stays alive), checkpoints, the stop flag, whose answer every rank receives at the same call (a stop or
an andon pull ends every rank within one step). torchrun ends all ranks when one fails. A killed worker takes
torchrun and the ranks with it (each is told to die with its parent), so the lease expires, the reaper re-queues the
run and the next worker resumes it (PPO from its newest checkpoint; a reward fit starts over).

On a CPU-only worker the ranks are gloo processes (how the tests run it); on a GPU worker each rank takes
`cuda:LOCAL_RANK`, and more `gpus` than the worker sees is refused before anything starts.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from training.models import TrainingRun
from training.services.reporter import RunReporter
from training.services.runs import artifacts_path

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a killed worker leaves no training orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the lease and the reaper still bound the damage
        pass


def worker_devices() -> tuple[str, int]:
    """("cuda", n) on a GPU worker, else ("cpu", cores): what `gpus` may ask for here."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.device_count()
    return "cpu", os.cpu_count() or 1


def execute_ranks(*, run: TrainingRun, reporter: RunReporter, gpus: int) -> None:
    """Run `run` under torchrun with `gpus` ranks and wait; the run's outcome is read back from the database."""
    kind, available = worker_devices()
    if gpus > available:
        raise ValueError(f"gpus: {gpus} asked, this worker sees {available} {'GPUs' if kind == 'cuda' else 'cores'}")
    log_path = artifacts_path(run) / f"ranks-attempt{run.attempts}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
               "-m", "training.ranks", str(run.id), reporter.owner]
    logger.info("run %s: %s ranks under torchrun (log %s)", run.id, gpus, log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        code = proc.wait()
    if code != 0:
        tail = Path(log_path).read_text(errors="replace")[-4000:]
        raise RuntimeError(f"torchrun with {gpus} ranks exited with {code}; the ranks' log ends:\n{tail}")
    # Rank 0 saw the stop flag (or a tripwire pulled the cord): the run ends stopped, as a one-process run does.
    status = TrainingRun.objects.filter(id=run.id).values_list("status", flat=True).first()
    if status == TrainingRun.Status.STOP_REQUESTED:
        reporter.stop_requested = True


def rank_main(run_id: int, owner: str) -> None:
    """One rank (started by torchrun through training/ranks.py, which sets Django up): its share of the run."""
    _die_with_parent()
    from training.services.tripwires import tripwire_for

    run = TrainingRun.objects.get(id=run_id)
    main = int(os.environ.get("RANK", "0")) == 0
    reporter = RunReporter(run=run, owner=owner, tripwire=tripwire_for(run)) if main else None
    if run.kind == TrainingRun.Kind.FIT_REWARD:
        from training.services.reward_fit import reward_fit_train

        # Every rank leaves the process group right after the fit (reward_fit_train): rank 0's evaluation and
        # save are its own, so there is no closing barrier to time out while it writes a large model.
        reward_fit_train(run=run, reporter=reporter)
        return
    if run.kind != TrainingRun.Kind.PPO:
        raise ValueError(f"run {run.id}: a {run.kind} run does not run over several ranks (gpus is for ppo and "
                         "fit_reward runs)")
    from training.services.ppo import ppo_train

    ppo_train(run=run, reporter=reporter)
    import torch.distributed

    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # rank 0 may still be recording checkpoints: nobody leaves the group early
        torch.distributed.destroy_process_group()
