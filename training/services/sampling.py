"""The sample run: a new batch of comparisons from the round's policy into the labeling queue
(and the same publishing for PPO's online mode).

Most comparisons hold K samples of the new policy; a `base_share` of them swap half their
samples for the base policy's (to watch drift and measure the policy's win rate), and queries
with a reference text put it in one slot of a `reference_share`. Every sample is tagged with
the checkpoint that wrote it. Publishing is one transaction and happens once per run: a
re-delivered or resumed sample run publishes nothing twice.

Only valid samples are published (2019): each slot is redrawn up to `max_tries` times until it
passes the task's truncation rule (`truncate_text` at or after `truncate_after`, the rule PPO
scores with its penalty), a query still short of K valid samples is dropped, and the share of
invalid draws is a run metric. Sample text comes from the library's decode, which makes NUL and
unpaired surrogates U+FFFD, so any text a model writes can be stored.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from labeling.models import Comparison, Query, Sample
from labeling.services import comparison_create
from training.models import BASE_POLICY_SOURCE, TrainingRun
from training.services.andon import quarantine_check
from training.services.models_io import checkpoint_source_name, final_checkpoint
from training.services.reporter import RunReporter
from training.services.task import query_format

# No truncation rule unless the project sets one, as PPO's and the reward fit's defaults (truncate_token None):
# a rule only the sample run applied would drop samples PPO scores as valid.
# `greedy`: each response is the model's most likely one (2020's samples for people; T = 0). A policy's greedy
# responses to one query are all alike, so every greedy comparison pits the policy against the base (base_share 1,
# K = 2). No comparison whose texts are all equal is published (greedy or not): it is counted instead.
DEFAULTS = {"n_queries": 16, "response_length": 24, "query_length": 64, "temperature": 1.0, "base_share": 0.25,
            "reference_share": 0.0, "truncate_text": "", "truncate_after": 0, "split": "train", "max_tries": 4,
            "greedy": False, "query_format": "{context}"}
MAX_TRIES_LIMIT = 32  # each try can cost a full sampling pass


def sample_config_errors(cfg: dict) -> list[str]:
    """What is wrong with a sample section (defaults filled in), checked before any model loads."""
    cfg = {**DEFAULTS, **cfg}
    errors = []
    tries = cfg["max_tries"]
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= MAX_TRIES_LIMIT:
        errors.append(f"max_tries must be a whole number from 1 to {MAX_TRIES_LIMIT}, got {tries!r}")
    if not isinstance(cfg["greedy"], bool):
        errors.append(f"greedy must be true or false, got {cfg['greedy']!r}")
    elif cfg["greedy"] and cfg["base_share"] != 1:
        errors.append("greedy needs base_share 1: a policy's greedy responses to a query are all alike, so each "
                      f"comparison holds the policy's against the base's (got base_share {cfg['base_share']!r})")
    length, after = cfg["response_length"], cfg["truncate_after"]
    if cfg["truncate_text"] and isinstance(length, int) and not (isinstance(after, int) and 0 <= after < length):
        # No response could ever be valid: every query would be dropped after all its tries.
        errors.append(f"truncate_after must be in [0, response_length = {length}) when truncate_text is set, "
                      f"got {after!r}")
    return errors


@dataclass
class Published:
    """What one publishing did: comparisons published, and the rejection sampling behind them."""

    comparisons: int = 0
    draws: int = 0  # the policy's responses drawn, over all tries
    invalid: int = 0  # of those, how many failed the validity rule
    dropped: int = 0  # queries left out: a slot still invalid after `max_tries`
    base_draws: int = 0
    base_invalid: int = 0
    # comparisons left out because all their samples have the same text (a collapsed policy, or a greedy pair
    # where the policy answers as the base does): a label on them says nothing
    identical: int = 0

    def metrics(self) -> dict[str, float]:
        """Run metrics; empty when nothing was sampled (a stop, or a batch published before)."""
        if not self.draws:
            return {}
        return {"sample/invalid_share": self.invalid / self.draws, "sample/dropped_queries": float(self.dropped),
                "sample/draws": float(self.draws),
                **({"sample/base_invalid_share": self.base_invalid / self.base_draws} if self.base_draws else {}),
                **({"sample/duplicate_comparisons": float(self.identical)} if self.identical else {})}


_STOPPING = (TrainingRun.Status.STOP_REQUESTED, TrainingRun.Status.STOPPED, TrainingRun.Status.ABORTED)


def publish_samples(*, run: TrainingRun, policy_lm, base_lm, tokenizer, source: str, cfg: dict, seed: int,
                    batch: str, should_stop=None, checkpoint_sha256: str | None = None) -> Published:
    """Sample K valid responses per query from `policy_lm` (half of them from `base_lm` in a
    `base_share` of the comparisons) and publish them as comparisons of `run`, tagged `batch`.
    Idempotent per batch: a batch that exists already is not published again."""
    from training.rlhf.sampling import sample_valid  # torch loads where sampling runs, not where rounds start
    from training.rlhf.task import truncate_token_of

    cfg = {**DEFAULTS, **cfg}
    errors = sample_config_errors(cfg)
    if errors:
        raise ValueError("Sample settings: " + "; ".join(errors) + ".")
    project = run.project
    if Comparison.objects.filter(source_run=run, batch=batch).exists():
        return Published()
    rng = random.Random(seed)

    # 1. Queries: a seeded draw from the split.
    queries = list(Query.objects.filter(project=project, split=cfg["split"]).order_by("id"))
    queries = rng.sample(queries, min(cfg["n_queries"], len(queries)))
    if not queries:
        raise ValueError(f"Project {project.slug} has no {cfg['split']} queries to sample from.")
    k = project.k
    if cfg["greedy"] and k != 2:
        raise ValueError(f"greedy samples need a K = 2 project (policy against base); {project.slug} has K = {k}.")
    gen = {"response_length": cfg["response_length"], "query_length": cfg["query_length"],
           "temperature": 0.0 if cfg["greedy"] else cfg["temperature"],
           "truncate_token": truncate_token_of(tokenizer, cfg["truncate_text"]),
           "truncate_after": cfg["truncate_after"], "should_stop": should_stop}

    # 2. Sample valid responses only (generation checks the stop flag as it goes); a query the
    #    policy cannot fill with valid samples is dropped, and only kept ones get base samples.
    from_policy = sample_valid(policy_lm, tokenizer, [query_format(q.context, cfg) for q in queries], k,
                               cfg["max_tries"], seed=seed, **gen)
    kept = [(q, group) for q, group in zip(queries, from_policy.samples) if group]
    from_base = sample_valid(base_lm, tokenizer, [query_format(q.context, cfg) for q, _ in kept], k // 2,
                             cfg["max_tries"],
                             seed=seed + 1, **gen)
    if should_stop is not None and should_stop():
        return Published()
    result = Published(draws=from_policy.draws, invalid=from_policy.invalid, dropped=from_policy.dropped,
                       base_draws=from_base.draws, base_invalid=from_base.invalid)
    params = {**{k_: v for k_, v in gen.items() if k_ != "should_stop"}, "seed": seed, "max_tries": cfg["max_tries"],
              "checkpoint_sha256": checkpoint_sha256}

    # 3. Publish, once, in one transaction. The run's row lock orders this against an andon pull
    #    (which withdraws the run's comparisons under the same lock): a pull that committed while
    #    these samples were drawn leaves nothing to publish, or they would stay in the queue.
    with transaction.atomic():
        status = TrainingRun.objects.select_for_update().filter(id=run.id).values_list("status", flat=True).first()
        if status in _STOPPING:
            return Published()
        quarantine_check(run=run)  # the cord quarantined the policy while these samples were drawn
        if Comparison.objects.filter(source_run=run, batch=batch).exists():
            return Published()
        published = []
        for (query, policy_samples), base_samples in zip(kept, from_base.samples):
            texts = [(s.text, source) for s in policy_samples]
            if rng.random() < cfg["base_share"] and base_samples:
                texts[: len(base_samples)] = [(s.text, BASE_POLICY_SOURCE) for s in base_samples]
            if query.reference and rng.random() < cfg["reference_share"]:
                texts[-1] = (query.reference, Sample.REFERENCE)
            if len({t for t, _ in texts}) == 1:
                result.identical += 1  # every text the same: nothing to compare
                continue
            published.append(query)
            rng.shuffle(texts)
            samples = [Sample.objects.create(query=query, text=t, source=s, generation_params=params) for t, s in texts]
            comparison = comparison_create(project=project, query=query, samples=samples, batch=batch)
            Comparison.objects.filter(id=comparison.id).update(source_run=run)
    result.comparisons = len(published)
    return result


def sample_execute(*, run: TrainingRun, reporter: RunReporter) -> None:
    import torch

    from training.rlhf.models import PolicyWithValue, load_lm

    torch.manual_seed(run.seed)
    quarantine_check(run=run)  # refused before loading a checkpoint the andon cord quarantined
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
    published = publish_samples(
        run=run, policy_lm=policy_lm, base_lm=base_lm, tokenizer=tokenizer,
        source=checkpoint_source_name(checkpoint, run.policy_run), cfg=run.config, seed=run.seed,
        batch=f"run{run.id}", should_stop=reporter.should_stop,
        checkpoint_sha256=checkpoint.sha256 if checkpoint else None,
    )
    reporter.on_step({"step": 1, "sample/comparisons": float(published.comparisons), **published.metrics()})
