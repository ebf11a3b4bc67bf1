"""The sample run: a new batch of comparisons from the round's policy into the labeling queue
(and the same publishing for PPO's online mode).

Most comparisons hold K samples of the new policy; a `base_share` of them swap half their
samples for the base policy's (to watch drift and measure the policy's win rate), and queries
with a reference text put it in one slot of a `reference_share`. Every sample is tagged with
the checkpoint that wrote it. Publishing is one transaction and happens once per run: a
re-delivered or resumed sample run publishes nothing twice.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from django.db import transaction

from labeling.models import Comparison, Query, Sample
from labeling.services import comparison_create
from training.models import BASE_POLICY_SOURCE, TrainingRun
from training.rlhf.models import PolicyWithValue, load_lm
from training.rlhf.sampling import sample
from training.services.models_io import checkpoint_source_name, final_checkpoint
from training.services.reporter import RunReporter

DEFAULTS = {"n_queries": 16, "response_length": 24, "query_length": 64, "temperature": 1.0, "base_share": 0.25,
            "reference_share": 0.0, "truncate_text": ".", "truncate_after": 8, "split": "train"}


def _truncate_token(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text) if text else []
    return ids[0] if len(ids) == 1 else None


_STOPPING = (TrainingRun.Status.STOP_REQUESTED, TrainingRun.Status.STOPPED, TrainingRun.Status.ABORTED)


def publish_samples(*, run: TrainingRun, policy_lm, base_lm, tokenizer, source: str, cfg: dict, seed: int,
                    batch: str, should_stop=None, checkpoint_sha256: str | None = None) -> int:
    """Sample K per query from `policy_lm` (half of them from `base_lm` in a `base_share` of the
    comparisons) and publish them as comparisons of `run`, tagged `batch`. Idempotent per batch:
    a batch that exists already is not published again. Returns the number published."""
    cfg = {**DEFAULTS, **cfg}
    project = run.project
    if Comparison.objects.filter(source_run=run, batch=batch).exists():
        return 0
    rng = random.Random(seed)

    # 1. Queries: a seeded draw from the split.
    queries = list(Query.objects.filter(project=project, split=cfg["split"]).order_by("id"))
    queries = rng.sample(queries, min(cfg["n_queries"], len(queries)))
    if not queries:
        raise ValueError(f"Project {project.slug} has no {cfg['split']} queries to sample from.")
    k = project.k
    gen = {"response_length": cfg["response_length"], "query_length": cfg["query_length"],
           "temperature": cfg["temperature"], "truncate_token": _truncate_token(tokenizer, cfg["truncate_text"]),
           "truncate_after": cfg["truncate_after"], "should_stop": should_stop}

    # 2. Sample (generation checks the stop flag as it goes).
    contexts = [q.context for q in queries]
    from_policy = sample(policy_lm, tokenizer, contexts, k, seed=seed, **gen)
    from_base = sample(base_lm, tokenizer, contexts, k // 2, seed=seed + 1, **gen)
    if should_stop is not None and should_stop():
        return 0
    params = {**{k_: v for k_, v in gen.items() if k_ != "should_stop"}, "seed": seed,
              "checkpoint_sha256": checkpoint_sha256}

    # 3. Publish, once, in one transaction. The run's row lock orders this against an andon pull
    #    (which withdraws the run's comparisons under the same lock): a pull that committed while
    #    these samples were drawn leaves nothing to publish, or they would stay in the queue.
    with transaction.atomic():
        status = TrainingRun.objects.select_for_update().filter(id=run.id).values_list("status", flat=True).first()
        if status in _STOPPING:
            return 0
        if Comparison.objects.filter(source_run=run, batch=batch).exists():
            return 0
        for query, policy_samples, base_samples in zip(queries, from_policy, from_base):
            texts = [(s.text, source) for s in policy_samples]
            if rng.random() < cfg["base_share"] and base_samples:
                texts[: len(base_samples)] = [(s.text, BASE_POLICY_SOURCE) for s in base_samples]
            if query.reference and rng.random() < cfg["reference_share"]:
                texts[-1] = (query.reference, Sample.REFERENCE)
            rng.shuffle(texts)
            samples = [Sample.objects.create(query=query, text=t, source=s, generation_params=params) for t, s in texts]
            comparison = comparison_create(project=project, query=query, samples=samples, batch=batch)
            Comparison.objects.filter(id=comparison.id).update(source_run=run)
    return len(queries)


def sample_execute(*, run: TrainingRun, reporter: RunReporter) -> None:
    torch.manual_seed(run.seed)
    # The policy: the PPO run's final checkpoint, else the base model.
    checkpoint = final_checkpoint(run.policy_run) if run.policy_run else None
    if checkpoint is not None:
        folder = Path(checkpoint.path)
        # A PPO checkpoint folder keeps the policy in policy/ beside the trainer state.
        policy, tokenizer = PolicyWithValue.from_pretrained(folder / "policy" if (folder / "policy").is_dir() else folder)
        policy_lm = policy.lm
    else:
        policy_lm, tokenizer = load_lm(run.base_model)
    base_lm, _ = load_lm(run.base_model)
    n = publish_samples(
        run=run, policy_lm=policy_lm, base_lm=base_lm, tokenizer=tokenizer,
        source=checkpoint_source_name(checkpoint, run.policy_run), cfg=run.config, seed=run.seed,
        batch=f"run{run.id}", should_stop=reporter.should_stop,
        checkpoint_sha256=checkpoint.sha256 if checkpoint else None,
    )
    reporter.on_step({"step": 1, "sample/comparisons": float(n)})
