"""The demo's base model: a small byte-level LM pretrained on a corpus shipped in the repo.

`python3 manage.py demo` builds it before serving (about a minute and a half on one CPU thread) and
points the demo projects' rounds at it, so a round's comparisons are words, not byte noise. It is
cached under ARTIFACTS_DIR/bases/demo-<hash of corpus and settings>/ and reused on later starts; a
build that was interrupted leaves no `pretrain_metrics.json` and is redone. No downloads: the corpus
is labeling/fixtures/demo_corpus.txt (short happy and sad stories, the demo's contexts among them).
torch is imported only inside the functions that train.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "labeling" / "fixtures" / "demo_corpus.txt"
# The shape of the library's "tiny" model (so a round costs what it did before) and enough steps for
# words: valid bits/byte falls to 1.5 after 500 steps of 16 128-byte chunks, 0.7 after 1,000, 0.5
# after 2,000 (about 45 ms a step on one CPU thread).
DEMO_BASE_SHAPE = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 256, "block_size": 128}
DEMO_BASE_STEPS = 2000
SECONDS_PER_STEP = 0.045
METRICS_FILE = "pretrain_metrics.json"


def demo_base_config(output_dir: Path | None, *, steps: int = DEMO_BASE_STEPS):
    """The PretrainConfig of the demo base (CPU, seeded)."""
    from training.rlhf.pretrain import PretrainConfig

    return PretrainConfig(corpus_path=str(DEMO_CORPUS), output_dir=str(output_dir) if output_dir else None,
                          **DEMO_BASE_SHAPE, batch_size=16, lr=3e-3, warmup_steps=20, max_steps=steps,
                          eval_every=max(1, steps // 4), eval_batches=2, log_every=max(1, steps // 20),
                          device="cpu", seed=2019)


def demo_base_folder(*, steps: int = DEMO_BASE_STEPS) -> Path:
    """Where the base of this corpus and these settings lives (built or not)."""
    config = dataclasses.asdict(demo_base_config(None, steps=steps))
    config.pop("corpus_path")
    spec = {"corpus_sha256": hashlib.sha256(DEMO_CORPUS.read_bytes()).hexdigest(), "config": config}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return Path(settings.ARTIFACTS_DIR) / "bases" / f"demo-{key}"


def demo_base_ready(folder: Path) -> bool:
    return (folder / METRICS_FILE).is_file()


def demo_base_ensure(*, steps: int = DEMO_BASE_STEPS, log: Callable[[str], None] = print) -> Path:
    """The demo base's folder (a model folder `load_lm` and a round's `base_model` accept), pretrained
    first when missing, on one torch thread (the caller's setting is restored)."""
    import torch

    from training.rlhf.pretrain import pretrain

    folder = demo_base_folder(steps=steps)
    if demo_base_ready(folder):
        log(f"Demo base model: reusing {folder}")
        return folder
    log(f"Demo base model: pretraining a byte-level LM on {DEMO_CORPUS.name} ({steps} steps, about "
        f"{max(1, round(steps * SECONDS_PER_STEP))} s on one CPU thread), once; it is cached in {folder}")
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted build

    def on_log(metrics: dict) -> None:
        if "valid/bits_per_byte" in metrics:
            log(f"  step {int(metrics['step'])}/{steps}: valid bits/byte {metrics['valid/bits_per_byte']:.2f}")

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pretrain(demo_base_config(folder, steps=steps), on_log=on_log)
    finally:
        torch.set_num_threads(previous)
    (folder / METRICS_FILE).write_text(json.dumps(result.metrics))
    log(f"Demo base model: ready in {folder}")
    return folder


def demo_base_is(path: str) -> bool:
    """Whether `path` names a demo base folder (of any corpus or settings)."""
    return Path(path).parent == Path(settings.ARTIFACTS_DIR) / "bases" and Path(path).name.startswith("demo-")
