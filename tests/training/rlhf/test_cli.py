"""The Django-free command line (python -m training.rlhf): fit a reward model from JSONL, then PPO against it,
resume, torchrun-free."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from training.rlhf.cli import fit_reward_main, ppo_main
from training.rlhf.models import RewardModel

REPO = Path(__file__).resolve().parents[3]


def write_comparisons(path: Path, n: int = 48) -> None:
    rows = []
    for i in range(n):
        samples = {f"sample{k}": "ab " * (k + 1) + "#" * (3 if k == i % 4 else 0) for k in range(4)}
        rows.append({"query": f"query {i}", **samples, "best": i % 4})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_fit_reward_then_ppo_with_separate_value_model_then_resume(tmp_path, capsys):
    write_comparisons(tmp_path / "comparisons.jsonl")
    (tmp_path / "rm.yaml").write_text(
        yaml.safe_dump(
            {
                "model": "tiny",
                "query_length": 8,
                "response_length": 12,
                "batch_size": 8,
                "lr": 1e-3,
                "normalize_samples": 32,
                "log_every": 2,
                "device": "cpu",
                "comparisons_path": str(tmp_path / "comparisons.jsonl"),
                "output_dir": str(tmp_path / "rm"),
                "metrics_path": str(tmp_path / "rm_metrics.jsonl"),
            }
        )
    )
    assert fit_reward_main([str(tmp_path / "rm.yaml")]) == 0
    assert capsys.readouterr().out.startswith("fit_reward: done saved=")
    rm_lines = [json.loads(line) for line in (tmp_path / "rm_metrics.jsonl").read_text().splitlines()]
    assert "valid/accuracy" in rm_lines[-1] and "normalization/gain" in rm_lines[-1]
    rm, _ = RewardModel.from_pretrained(tmp_path / "rm")
    assert rm.gain.item() == pytest.approx(rm_lines[-1]["normalization/gain"], rel=1e-6)

    ppo = {
        "policy_model": "tiny",
        "reward": str(tmp_path / "rm"),
        "value_model": "separate",
        "query_length": 8,
        "response_length": 8,
        "batch_size": 8,
        "total_episodes": 16,
        "lr": 1e-4,
        "device": "cpu",
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "metrics_path": str(tmp_path / "ppo.jsonl"),
    }
    # The reward model's task.json says 12-token responses: PPO of 8-token ones is refused, naming the field.
    (tmp_path / "ppo.json").write_text(json.dumps(ppo))
    with pytest.raises(SystemExit, match="trained for another task definition: response_length: 8 here, 12 there"):
        ppo_main([str(tmp_path / "ppo.json")])
    assert not (tmp_path / "ckpt").exists()
    ppo["response_length"] = 12
    (tmp_path / "ppo.json").write_text(json.dumps(ppo))
    assert ppo_main([str(tmp_path / "ppo.json")]) == 0
    assert "ppo: done step=2/2 resumed_from=None" in capsys.readouterr().out
    (tmp_path / "ppo.json").write_text(json.dumps({**ppo, "total_episodes": 24}))
    assert ppo_main([str(tmp_path / "ppo.json")]) == 0
    assert "ppo: done step=3/3 resumed_from=step-00000002" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (tmp_path / "ppo.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_python_dash_m_training_rlhf_ppo_runs_a_builtin_reward_smoke_config(tmp_path):
    config = {
        "policy_model": "tiny",
        "reward": "builtin:lowercase",
        "query_length": 8,
        "response_length": 8,
        "batch_size": 8,
        "total_episodes": 16,
        "device": "cpu",
        "metrics_path": str(tmp_path / "m.jsonl"),
    }
    (tmp_path / "ppo.json").write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "training.rlhf", "ppo", str(tmp_path / "ppo.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("ppo: done step=2/2")
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2


def test_bad_config_exits_with_the_field_named(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"policy_model": "tiny", "learning_rate": 1e-3}))
    with pytest.raises(SystemExit, match="unknown PPOConfig fields: learning_rate"):
        ppo_main([str(tmp_path / "bad.json")])
    (tmp_path / "bad.yaml").write_text("batch_size: 8\nnminibatches: 3\n")
    with pytest.raises(SystemExit, match="minibatches"):
        ppo_main([str(tmp_path / "bad.yaml")])
