"""Byte-level LM pretraining: corpus formats, the training loop, checkpoints and the saved folder."""

import math
from pathlib import Path

import pytest
import torch

from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.cli import main
from training.rlhf.config import ConfigError
from training.rlhf.models import load_lm
from training.rlhf.pretrain import (
    PretrainConfig,
    corpus_files,
    pretrain,
    random_chunks,
    read_corpus,
    split_documents,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_corpus.txt"


def tiny_config(**overrides) -> PretrainConfig:
    base = dict(
        n_layer=2, n_embd=64, n_head=4, block_size=64, n_positions=128, batch_size=16, lr=3e-3,
        warmup_steps=10, max_steps=60, eval_every=30, eval_batches=2, device="cpu", seed=3,
    )
    return PretrainConfig(**{**base, **overrides})


def test_fortune_format_splits_on_percent_lines():
    text = "First entry\nstill first.\n%\nSecond entry.\n%\n\n%\nThird\n\n  -- someone\n"
    assert split_documents(text) == ["First entry\nstill first.", "Second entry.", "Third\n\n  -- someone"]


def test_plain_text_splits_on_blank_lines():
    text = "One line.\nSame paragraph.\n\n\nTwo.\n  \nThree.\n"
    assert split_documents(text) == ["One line.\nSame paragraph.", "Two.", "Three."]


def test_corpus_folder_skips_index_files_and_symlinks(tmp_path):
    (tmp_path / "b").write_text("Bee one.\n%\nBee two.\n")
    (tmp_path / "a").write_text("Ay one.\n\nAy two.\n")
    (tmp_path / "a.dat").write_bytes(b"\x00\x01\x02binary index")
    (tmp_path / "a.u8").symlink_to(tmp_path / "a")
    assert [p.name for p in corpus_files(tmp_path)] == ["a", "b"]
    assert read_corpus(tmp_path) == ["Ay one.", "Ay two.", "Bee one.", "Bee two."]


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        read_corpus(tmp_path / "nope")


def test_chunks_are_contiguous_windows():
    stream = torch.arange(1000)
    chunks = random_chunks(stream, 16, 8, torch.Generator().manual_seed(0))
    assert chunks.shape == (8, 17)
    assert torch.equal(chunks[:, 1:] - chunks[:, :-1], torch.ones(8, 16, dtype=torch.long))


def test_validate_names_each_bad_field():
    with pytest.raises(ConfigError) as error:
        PretrainConfig(n_embd=100, n_head=3, block_size=512, n_positions=256, lr_schedule="steps", valid_fraction=0).validate()
    message = str(error.value)
    for field in ("n_embd", "n_positions", "lr_schedule", "valid_fraction"):
        assert field in message


def test_pretrain_on_fixture_lowers_loss_and_saves_a_loadable_lm(tmp_path):
    docs = read_corpus(FIXTURE)
    result = pretrain(tiny_config(output_dir=str(tmp_path / "base")), documents=docs)
    uniform = math.log(258)  # an untrained byte model is near uniform over 258 ids
    assert result.metrics["step"] == 60
    assert result.metrics["valid/loss"] < uniform - 2.0
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"] - 0.5
    assert result.metrics["valid/bits_per_byte"] == pytest.approx(result.metrics["valid/loss"] / math.log(2))

    lm, tokenizer = load_lm(tmp_path / "base")
    ids = torch.tensor([tokenizer.encode("The old dog was happy")])
    with torch.no_grad():
        assert torch.allclose(lm(input_ids=ids).logits, result.lm(input_ids=ids).logits, atol=1e-5)


def test_time_budget_ends_the_run(tmp_path):
    result = pretrain(tiny_config(max_steps=100_000, max_seconds=1.0), documents=read_corpus(FIXTURE))
    assert 0 < result.metrics["step"] < 100_000
    assert "valid/loss" in result.metrics


def test_should_stop_ends_the_run_early():
    calls = []
    result = pretrain(tiny_config(), documents=read_corpus(FIXTURE), should_stop=lambda: calls.append(1) or len(calls) > 5)
    assert result.stopped and result.metrics["step"] == 5


def test_checkpoints_are_written_and_a_run_resumes_from_the_latest(tmp_path):
    docs = read_corpus(FIXTURE)
    first = pretrain(tiny_config(max_steps=20, save_every=10, checkpoint_dir=str(tmp_path / "ckpt")), documents=docs)
    folder = latest_checkpoint(tmp_path / "ckpt")
    assert folder.name == "step-00000020"
    assert first.metrics["step"] == 20
    second = pretrain(tiny_config(max_steps=30, checkpoint_dir=str(tmp_path / "ckpt")), documents=docs)
    assert second.history[0]["step"] > 20  # continued, not restarted
    assert second.metrics["step"] == 30
    assert latest_checkpoint(tmp_path / "ckpt").name == "step-00000030"


def test_cli_saves_and_prints_a_summary(tmp_path, capsys):
    config = tmp_path / "pretrain.json"
    out = tmp_path / "base"
    fields = tiny_config(max_steps=10, eval_every=10, corpus_path=str(FIXTURE), output_dir=str(out))
    import dataclasses
    import json

    config.write_text(json.dumps(dataclasses.asdict(fields)))
    assert main(["pretrain", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "pretrain: done" in printed and printed.count("sample:") == 3
    load_lm(out)


def test_cli_rejects_a_bad_config(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text('{"n_layer": 0, "corpus_path": "x", "output_dir": "y"}')
    with pytest.raises(SystemExit, match="n_layer"):
        main(["pretrain", str(config)])


def test_init_from_continues_an_existing_lm(tmp_path):
    docs = read_corpus(FIXTURE)
    first = pretrain(tiny_config(output_dir=str(tmp_path / "first"), max_steps=30), documents=docs)
    # Continuing with no steps of its own would be the same model; a few steps at a low rate stay close
    # to it, while a fresh model of the same shape starts near uniform.
    more = pretrain(tiny_config(init_from=str(tmp_path / "first"), max_steps=5, lr=1e-4, n_layer=1), documents=docs)
    assert more.lm.config.n_layer == 2  # the folder's shape wins
    assert more.history[0]["train/loss"] < math.log(258) - 1.0
    assert abs(more.metrics["valid/loss"] - first.metrics["valid/loss"]) < 0.2


def test_init_from_needs_enough_positions(tmp_path):
    docs = read_corpus(FIXTURE)
    pretrain(tiny_config(output_dir=str(tmp_path / "short"), max_steps=1, n_positions=64), documents=docs)
    with pytest.raises(ConfigError, match="n_positions 64"):
        pretrain(tiny_config(init_from=str(tmp_path / "short"), block_size=96, n_positions=128), documents=docs)
