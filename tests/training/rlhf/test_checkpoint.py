"""Checkpoint folders are published atomically: a crash mid-write leaves the previous one usable."""

import pytest

from training.rlhf.checkpoint import latest_checkpoint, save_checkpoint


def write_text(content: str):
    def write(folder):
        (folder / "weights.txt").write_text(content)

    return write


def test_latest_points_at_newest_complete_checkpoint_and_old_ones_are_pruned(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, write_text(f"step {step}"), keep=2)
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 1, write_text("good"))

    def crash(folder):
        (folder / "weights.txt").write_text("half")
        raise KeyboardInterrupt  # stands in for a kill between two files

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, crash)
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    assert (latest_checkpoint(tmp_path) / "weights.txt").read_text() == "good"
    assert not (tmp_path / "step-00000002").exists()
    save_checkpoint(tmp_path, 2, write_text("better"))
    assert list(tmp_path.glob(".tmp-*")) == []  # the leftover from the crash is cleaned up
    assert (latest_checkpoint(tmp_path) / "weights.txt").read_text() == "better"


def test_saving_the_same_step_again_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 5, write_text("first"))
    save_checkpoint(tmp_path, 5, write_text("second"))
    assert (latest_checkpoint(tmp_path) / "weights.txt").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("LATEST")] == ["step-00000005"]
