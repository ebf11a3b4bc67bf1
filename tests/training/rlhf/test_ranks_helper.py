"""The distributed tests' spawn: a rank that never finishes fails the test with its stack instead of hanging the
run, and a rank's exception reaches the test as ``mp.spawn``'s does."""

import os
import time

import pytest
from torch.multiprocessing import ProcessRaisedException

from tests.training.rlhf.ranks import spawn_ranks


def _rank_1_blocks(rank: int, out_dir: str) -> None:
    with open(os.path.join(out_dir, f"rank{rank}"), "w"):
        pass
    if rank == 1:
        time.sleep(3600)  # a peer's collective that never comes


def _rank_1_raises(rank: int) -> None:
    if rank == 1:
        raise ValueError("rank 1 broke")


def test_a_blocked_rank_fails_with_its_stack_instead_of_hanging(tmp_path, capfd):
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"ranks \[1\] of 2 still running after 20 s"):
        spawn_ranks(_rank_1_blocks, (str(tmp_path),), timeout=20)
    assert time.monotonic() - started < 60
    assert sorted(os.listdir(tmp_path)) == ["rank0", "rank1"]
    assert "_rank_1_blocks" in capfd.readouterr().err  # the blocked rank's stack, printed before it was killed


def test_a_rank_exception_reaches_the_test():
    with pytest.raises(ProcessRaisedException, match="rank 1 broke"):
        spawn_ranks(_rank_1_raises, ())
