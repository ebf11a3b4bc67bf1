"""The mock-sentiment experiment through the product (issue 6; `manage.py mock_sentiment`).

A small byte-level LM is pretrained on a corpus (or reused from a cached folder under
ARTIFACTS_DIR); a project gets corpus prefixes as queries (for the `copy` labeler's
summarization variant, passages ending "\nTL;DR:"); `sample` runs from the base publish best-of-K comparisons; simulated
labelers answer them through the labeling services; one round (fit_reward → ppo → sample) runs
on the Celery workers; fit_reward runs on label-count snapshots give the label curve. Then the
tuned policy is judged on held-out queries by the labeler's noise-free scorer
(`training.rlhf.evaluate`), against the base and against PPO directly on that scorer (the upper
bound, on the library path in this process). Results JSON and two PNGs go into the PPO run's
artifacts folder and onto its page (`run.report`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.errors import InvalidInput
from labeling.models import Comparison, Label, Project, Query
from labeling.roles import RESEARCHER, user_set_role
from labeling.services.projects import project_create
from labeling.services.simulation import LabelerSpec, simulate_labeling, simulated_labelers_ensure
from labeling.scorers import score_copy, score_sentiment
from training.models import Round, TrainingRun
from training.rlhf.experiment import COPY_STAGES, CopyStage, MockExperimentConfig
from training.services.models_io import final_checkpoint
from training.services.rounds import round_start
from training.services.runs import artifacts_path, run_create

Kind, Status = TrainingRun.Kind, TrainingRun.Status
SCORERS: dict[str, Callable[[str, str], float]] = {"sentiment": score_sentiment, "copy": score_copy}
EXPERIMENT_USER = "mock-experiment"
MIN_LABELS = 10


@dataclass
class ExperimentSettings(MockExperimentConfig):
    """The shared settings (`training.rlhf.experiment`) plus the product's; `quick()` is the miniature."""

    labeler: str = "sentiment"
    project_slug: str = ""
    held_fraction: float = 0.15
    normalize_samples: int = 512
    direct: bool = True  # also PPO directly on the scorer (library path), the upper bound
    # the copy variant's base: staged pretraining on TL;DR posts and copy drills (training.rlhf.experiment)
    copy_stages: tuple[CopyStage, ...] = COPY_STAGES
    copy_block_size: int = 256  # a post, the cue and a summary fit in one training chunk
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides) -> ExperimentSettings:
        # A few hundred labels: the last-token readout at a higher rate is what the miniature was
        # measured with; the mean readout is still near chance below about 1,000 labels.
        base = dict(pretrain_steps=400, pretrain_seconds=90.0, labels=400, curve=(100, 200), ppo_episodes=640,
                    eval_queries=256, valid_comparisons=200, normalize_samples=256,
                    rm_readout="last", rm_lr=1e-3, rm_epochs=2, kl_coef=0.1)
        return cls(**{**base, **overrides})

    @property
    def summarization(self) -> bool:
        return self.labeler == "copy"

    @property
    def slug(self) -> str:
        return self.project_slug or ("mock-copy" if self.summarization else "mock-sentiment")

    def copy_stage_list(self) -> tuple[CopyStage, ...]:
        """`copy_stages`, each scaled by pretrain_steps / 3,000 (so --pretrain-steps and --quick shrink them)."""
        scale = self.pretrain_steps / MockExperimentConfig.pretrain_steps
        return tuple(dataclasses.replace(st, steps=max(1, round(st.steps * scale))) for st in self.copy_stages)

    def context_bytes(self) -> int:
        return self.query_bytes * 5 if self.summarization else self.query_bytes

    def context_tokens(self) -> int:
        return self.query_length * 5 if self.summarization else self.query_length

    def pretrain_config(self, output_dir: Path | None):
        return super().pretrain_config(output_dir, n_positions=max(256, self.context_tokens() + self.response_length))

    def reward_config(self) -> dict:
        return {"query_length": self.context_tokens(), "response_length": self.response_length,
                "batch_size": self.rm_batch, "lr": self.rm_lr, "epochs": self.rm_epochs, "valid_fraction": 0.0,
                "readout": self.rm_readout,
                "normalize": "samples", "normalize_before": True, "normalize_samples": self.normalize_samples,
                "temperature": self.temperature, "device": "cpu", "seed": self.seed + 1}

    def ppo_config(self) -> dict:
        return {"query_length": self.context_tokens(), "response_length": self.response_length,
                "temperature": self.temperature, "total_episodes": self.ppo_episodes, "batch_size": self.ppo_batch,
                "nminibatches": self.ppo_minibatches, "noptepochs": 4, "lr": self.ppo_lr, "kl_coef": self.kl_coef,
                "adaptive_kl": self.kl_target > 0, "kl_target": self.kl_target if self.kl_target > 0 else None,
                "kl_horizon": self.kl_horizon, "device": "cpu", "seed": self.seed + 11,
                "save_every": max(1, -(-self.ppo_episodes // self.ppo_batch) // 4)}

    def sample_config(self, n_queries: int, split: str = "train") -> dict:
        return {"n_queries": n_queries, "response_length": self.response_length,
                "query_length": self.context_tokens(), "temperature": self.temperature, "base_share": 0.0,
                "reference_share": 0.0, "truncate_text": "", "split": split}


def settings_check(s: ExperimentSettings, *, database: bool = True) -> None:
    """Bad input is InvalidInput before anything is written (`database=False`: the checks that need no tables)."""
    if s.labeler not in SCORERS:
        raise InvalidInput(f"Unknown labeler kind {s.labeler!r}: choose sentiment or copy.", field="labeler")
    if s.labels < MIN_LABELS:
        raise InvalidInput(f"--labels must be at least {MIN_LABELS} (got {s.labels}).", field="labels")
    if not Path(s.corpus).exists():
        raise InvalidInput(f"Corpus {s.corpus} does not exist: pass --corpus FILE (or install Debian's fortunes).",
                           field="corpus")
    if database and Project.objects.filter(slug=s.slug).exists():
        raise InvalidInput(f"Project {s.slug!r} exists already: pass another --project-slug.", field="project_slug")


# --- base model --------------------------------------------------------------------------------


def base_model_ensure(s: ExperimentSettings, docs: list[str], posts: list[str],
                      log: Callable[[str], None]) -> tuple[Path, dict]:
    """The cached pretrained base for this corpus and these settings, pretrained when missing. The
    copy variant's base is pretrained in stages (`s.copy_stages`) on the corpus plus its training
    `posts` with TL;DR summaries and copy drills, so that it copies some of the time."""
    from training.rlhf.pretrain import pretrain

    spec = {"corpus": str(Path(s.corpus).resolve()), "n_docs": len(docs),
            "config": dataclasses.asdict(s.pretrain_config(None))}
    if s.summarization:
        spec.update(stages=[dataclasses.asdict(st) for st in s.copy_stage_list()], block=s.copy_block_size,
                    posts=hashlib.sha256("\n".join(posts).encode()).hexdigest())
    key = json.dumps(spec, sort_keys=True)
    folder = Path(django_settings.ARTIFACTS_DIR) / "bases" / f"base-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    metrics_file = folder / "pretrain_metrics.json"
    if metrics_file.is_file():
        log(f"reusing the pretrained base {folder}")
        metrics = json.loads(metrics_file.read_text())
        return Path(metrics.get("model_dir", folder)), metrics

    def on_log(metrics: dict) -> None:
        if "valid/loss" in metrics:
            log(f"  pretrain step {int(metrics['step'])}: valid bits/byte {metrics['valid/bits_per_byte']:.3f}")

    if s.summarization:
        model_dir, metrics = _copy_base_pretrain(s, folder, docs, posts, on_log, log)
        metrics = {**metrics, "model_dir": str(model_dir)}
    else:
        model_dir, metrics = folder, pretrain(s.pretrain_config(folder), documents=docs, on_log=on_log).metrics
    metrics_file.write_text(json.dumps(metrics))
    return model_dir, metrics


def _copy_base_pretrain(s: ExperimentSettings, folder: Path, docs: list[str], posts: list[str], on_log,
                        log: Callable[[str], None]) -> tuple[Path, dict]:
    """The copy variant's stages, each continuing the last in `folder`/stage-N; an interrupted run
    resumes at the first unfinished stage. Returns the last stage's folder and metrics."""
    from training.rlhf.evaluate import TLDR
    from training.rlhf.experiment import copy_stage_documents
    from training.rlhf.pretrain import pretrain

    model_dir, metrics = None, {}
    stages = s.copy_stage_list()
    for i, stage in enumerate(stages, start=1):
        stage_dir = folder / f"stage-{i}"
        done = stage_dir / "pretrain_metrics.json"
        if not done.is_file():
            log(f"  copy base stage {i}/{len(stages)}: {stage}")
            config = dataclasses.replace(s.pretrain_config(stage_dir), max_steps=stage.steps,
                                         block_size=s.copy_block_size, init_from=str(model_dir) if model_dir else None,
                                         max_seconds=2 * s.pretrain_seconds)
            documents = copy_stage_documents(docs, posts, stage, s.seed + 100 * i, TLDR)
            done.write_text(json.dumps(pretrain(config, documents=documents, on_log=on_log).metrics))
        model_dir, metrics = stage_dir, json.loads(done.read_text())
    return model_dir, metrics


# --- project, labels, round --------------------------------------------------------------------


def experiment_queries(s: ExperimentSettings, docs: list[str]) -> tuple[list[str], list[str]]:
    """Train and held-out query texts: corpus prefixes, or for the copy labeler's summarization
    variant passages ending in the 2019 cue "\nTL;DR:". InvalidInput when too few."""
    from training.rlhf.evaluate import query_prefix, split_queries, tldr_query

    if s.summarization:
        def make(doc):
            return tldr_query(doc, s.context_bytes())
    else:
        def make(doc):
            return query_prefix(doc, s.query_bytes)
    train, held = split_queries(docs, make, s.held_fraction, s.seed + 7)
    if len(train) < 2 or len(held) < 2:
        raise InvalidInput(f"Corpus {s.corpus} gives too few queries ({len(train)} train, {len(held)} held out).",
                           field="corpus")
    return train, held


def experiment_user():
    """The researcher account that starts the experiment's runs."""
    user, created = get_user_model().objects.get_or_create(username=EXPERIMENT_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user_set_role(user, RESEARCHER)
    return get_user_model().objects.get(id=user.id)  # fresh permission cache


def experiment_project(s: ExperimentSettings, train: list[str], held: list[str], user) -> Project:
    kind = Project.TaskKind.SUMMARIZATION if s.summarization else Project.TaskKind.CONTINUATION
    with transaction.atomic():
        project = project_create(name=f"Mock experiment ({s.labeler})", slug=s.slug, k=s.k, task_kind=kind,
                                 calibration_share=0.0, created_by=user,
                                 description="Simulated labelers on a pretrained base (manage.py mock_sentiment).")
        Query.objects.bulk_create(
            [Query(project=project, context=t, external_id=f"train-{i}", split=Query.Split.TRAIN)
             for i, t in enumerate(train)]
            + [Query(project=project, context=t, external_id=f"held-{i}", split=Query.Split.VALID)
               for i, t in enumerate(held)])
    return project


def wait_for_runs(runs: list[TrainingRun], log: Callable[[str], None], *, poll_s: float = 2.0,
                  timeout_s: float = 6 * 3600, round_: Round | None = None) -> None:
    """Poll the database until every run has ended (a round: until the round ends), printing progress."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        rows = list(TrainingRun.objects.filter(id__in=[r.id for r in runs]).order_by("id"))
        if round_ is not None:
            rows = list(round_.runs.order_by("id"))
        parts = []
        for run in rows:
            latest = dict(run.metrics.order_by("-step", "key").values_list("key", "value")[:40])
            shown = ", ".join(f"{k} {v:.3g}" for k, v in sorted(latest.items())
                              if v is not None and k in ("objective/kl", "objective/score", "train/loss",
                                                         "train/accuracy", "sample/comparisons"))
            parts.append(f"run {run.id} {run.kind} {run.status} step {run.step}/{run.total_steps or '?'}"
                         + (f" ({shown})" if shown else ""))
        line = "; ".join(parts)
        if line != last:
            log(line)
            last = line
        if round_ is not None:
            round_.refresh_from_db()
            if round_.status != Round.Status.RUNNING:
                return
        elif all(r.status in TrainingRun.ENDED for r in rows):
            return
        time.sleep(poll_s)
    raise TimeoutError("the experiment's runs did not end in time")


def publish_base_comparisons(project: Project, s: ExperimentSettings, base_dir: Path, user, n: int,
                             log: Callable[[str], None]) -> list[TrainingRun]:
    """`sample` runs from the base until `n` comparisons are published (one per train query per run; a comparison
    whose samples are all the same text is not published, so more runs make up for those, with new seeds)."""
    n_train = Query.objects.filter(project=project, split=Query.Split.TRAIN).count()
    runs, published, i = [], 0, 0
    for _ in range(5):
        left, batch = n - published, []
        if left <= 0:
            break
        while left > 0:
            size = min(left, n_train)
            batch.append(run_create(project=project, kind=Kind.SAMPLE, base_model=str(base_dir),
                                    seed=s.seed + 100 + i, config=s.sample_config(size), started_by=user))
            left -= size
            i += 1
        wait_for_runs(batch, log)
        failed = [r for r in TrainingRun.objects.filter(id__in=[r.id for r in batch]) if r.status != Status.FINISHED]
        if failed:
            raise RuntimeError(f"sample run {failed[0].id} ended {failed[0].status}: {failed[0].error[-2000:]}")
        runs += batch
        published = Comparison.objects.filter(source_run__in=runs).count()
    return runs


def label_snapshot_at(project: Project, n: int) -> dict:
    """The snapshot of the project's first `n` answered labels (a fit_reward run's `label_snapshot`)."""
    ids = list(Label.objects.filter(comparison__project=project, skipped=False).order_by("id")
               .values_list("id", flat=True)[:n])
    return {"max_label_id": ids[-1], "count": len(ids)}


# --- evaluation --------------------------------------------------------------------------------


def _load_policy(ppo_run: TrainingRun):
    from training.rlhf.models import load_policy

    checkpoint = final_checkpoint(ppo_run)
    if checkpoint is None:
        raise RuntimeError(f"PPO run {ppo_run.id} has no checkpoint")
    policy, _ = load_policy(checkpoint.path)
    return policy.eval()


def _reward_model(fit_run: TrainingRun):
    from training.rlhf.models import RewardModel

    model, _ = RewardModel.from_pretrained(final_checkpoint(fit_run).path)
    return model.requires_grad_(False).eval()


def _cycle(items: list[str], n: int) -> list[str]:
    """The first `n` items, going round again when there are fewer."""
    return [items[i % len(items)] for i in range(n)] if items else []


def _copy_rate(texts: list[str], contexts: list[str]) -> float:
    from labeling.textstats import copy_overlap

    return sum(copy_overlap(c, t) for t, c in zip(texts, contexts)) / max(1, len(texts))


def evaluate(s: ExperimentSettings, project: Project, base_dir: Path, ppo_run: TrainingRun,
             curve_runs: list[tuple[int, TrainingRun]], log: Callable[[str], None]) -> dict:
    """Held-out figures of the tuned policy (and the direct upper bound) against the base."""
    import torch

    from training.rlhf import evaluate as ev
    from training.rlhf.data import Comparison
    from training.rlhf.models import load_lm
    from training.rlhf.reward_model import comparison_rewards, encode_comparisons

    scorer = SCORERS[s.labeler]
    base, tokenizer = load_lm(base_dir)
    base.eval()
    held = list(Query.objects.filter(project=project, split=Query.Split.VALID).order_by("id")
                .values_list("context", flat=True))
    eval_q = _cycle(held, s.eval_queries)  # a small corpus's held-out queries are sampled more than once
    gen = {"query_length": s.context_tokens(), "response_length": s.response_length, "temperature": s.temperature}
    base_samples = ev.sample_responses(base, tokenizer, eval_q, seed=s.seed + 300, **gen)
    base_scores = ev.score_texts(scorer, base_samples.texts, eval_q)

    # Reward models along the label curve, on held-out best-of-K comparisons from the base.
    valid_q = _cycle(held, s.valid_comparisons)
    rows = [q for q in valid_q for _ in range(s.k)]
    valid = ev.sample_responses(base, tokenizer, rows, seed=s.seed + 200, **gen)
    true_scores = ev.score_texts(scorer, valid.texts, rows).view(len(valid_q), s.k)
    records = [Comparison(query=q, samples=valid.texts[i * s.k:(i + 1) * s.k], best=0) for i, q in enumerate(valid_q)]
    data = encode_comparisons(records, tokenizer, s.context_tokens(), s.response_length)
    curve = []
    for n, fit_run in curve_runs:
        with torch.no_grad():
            rewards = comparison_rewards(_reward_model(fit_run), data, torch.device("cpu"))
        acc = ev.reward_accuracy(rewards, true_scores)
        curve.append({"labels": n, "fit_run": fit_run.id, **acc})
        log(f"reward model on {n} labels (run {fit_run.id}): held-out pairwise accuracy "
            f"{acc['pairwise_accuracy']:.3f} on {acc['n_pairs']} pairs, true-best {acc['true_best_accuracy']:.3f}")

    policy = _load_policy(ppo_run)
    tuned, tuned_samples = ev.evaluate_policy(policy, base, tokenizer, eval_q, base_scores, scorer,
                                              seed=s.seed + 400, **gen)
    results = {
        "base": {"mean_score": base_scores.mean().item(), "copy_rate": _copy_rate(base_samples.texts, eval_q)},
        "tuned": {**tuned, "copy_rate": _copy_rate(tuned_samples.texts, eval_q)},
        "curve": curve,
        "samples": {"queries": eval_q[:4], "base": base_samples.texts[:4], "tuned": tuned_samples.texts[:4]},
        "trajectory": _trajectory(ppo_run),
    }
    if s.direct:
        results["direct"] = direct_ppo(s, base_dir, project, base, tokenizer, eval_q, base_scores, log)
    return results


def _trajectory(run: TrainingRun) -> list[dict]:
    by_step: dict[int, dict] = {}
    for step, key, value in run.metrics.filter(key__in=["objective/kl", "objective/score"]).values_list(
            "step", "key", "value"):
        by_step.setdefault(step, {"step": step})[key] = value
    return [by_step[k] for k in sorted(by_step)]


def direct_ppo(s: ExperimentSettings, base_dir: Path, project: Project, base, tokenizer, eval_q: list[str],
               base_scores, log: Callable[[str], None]) -> dict:
    """PPO on the labeler's noise-free scorer (normalised on base samples), same settings; library path."""
    from training.rlhf import evaluate as ev
    from training.rlhf.config import PPOConfig
    from training.rlhf.models import load_lm, load_policy
    from training.rlhf.ppo import PPOTrainer
    from training.rlhf.tokenizer import encode_queries

    scorer = SCORERS[s.labeler]
    train = list(Query.objects.filter(project=project, split=Query.Split.TRAIN).order_by("id")
                 .values_list("context", flat=True))
    gen = {"query_length": s.context_tokens(), "response_length": s.response_length, "temperature": s.temperature}
    norm = ev.sample_responses(base, tokenizer, train[:512], seed=s.seed + 500, **gen)
    reward = ev.scorer_reward(scorer, tokenizer, ev.score_texts(scorer, norm.texts, train[:512]))
    config = PPOConfig(policy_model=str(base_dir), reward="direct", **{
        k: v for k, v in s.ppo_config().items() if k not in ("save_every",)})
    policy, _ = load_policy(str(base_dir))
    ref, _ = load_lm(base_dir)
    queries, mask = encode_queries(tokenizer, train, config.query_length)
    trajectory: list[dict] = []

    def on_step(metrics: dict) -> bool:
        trajectory.append({k: float(metrics[k]) for k in ("step", "objective/kl", "objective/score")})
        step = int(metrics["step"])
        if step == 1 or step % 10 == 0 or step == config.n_updates:
            log(f"  direct PPO step {step}/{config.n_updates}: score {metrics['objective/score']:+.3f}, "
                f"KL {metrics['objective/kl']:.2f}")
        return True

    PPOTrainer(config, policy, ref, reward, queries, mask, tokenizer).train(on_step)
    figures, _ = ev.evaluate_policy(policy.eval(), base, tokenizer, eval_q, base_scores, scorer,
                                    seed=s.seed + 400, **gen)
    return {**figures, "trajectory": trajectory, "path": "library (PPOTrainer on the scorer, in this process)"}


# --- report ------------------------------------------------------------------------------------


def write_plots(results: dict, folder: Path) -> dict[str, str]:
    """`score_vs_kl.png` and `rm_accuracy.png` in `folder`. Held-out points only: the runs' training
    curves are in normalised reward units, not the true score."""
    from training.rlhf.plots import AccuracySeries, PolicyPoint, plot_rm_accuracy, plot_score_vs_kl

    series = [("RM PPO (product round)", results["tuned"])]
    if "direct" in results:
        series.append(("PPO on the true score (library)", results["direct"]))
    points = [PolicyPoint(f"{label}: win rate {ev['win_rate']:.2f}", ev["kl"], ev["mean_score"]) for label, ev in series]
    curve = results["curve"]
    return {
        "score_vs_kl": plot_score_vs_kl(folder / "score_vs_kl.png", base_score=results["base"]["mean_score"],
                                        points=points, ylabel=f"held-out mean true score ({results['settings']['labeler']})"),
        "rm_accuracy": plot_rm_accuracy(folder / "rm_accuracy.png", labels=[p["labels"] for p in curve], series=[
            AccuracySeries("held-out pairs ordered like the scorer", [p["pairwise_accuracy"] for p in curve], 0.5),
            AccuracySeries("true best picked", [p["true_best_accuracy"] for p in curve], 1 / results["settings"]["k"])]),
    }


def _json_safe(value):
    """NaN and inf (e.g. an accuracy over no pairs) as None: JSON columns and files take no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_report_record(*, run: TrainingRun, results: dict, plots: dict[str, str]) -> None:
    """Keep the experiment's headline figures and plot paths with the run (shown on its page)."""
    headline = {
        "labeler": results["settings"]["labeler"],
        "labels": results["settings"]["labels"],
        "rm_pairwise_accuracy": results["curve"][-1]["pairwise_accuracy"] if results["curve"] else None,
        "win_rate": results["tuned"]["win_rate"], "mean_score": results["tuned"]["mean_score"],
        "base_mean_score": results["base"]["mean_score"], "kl": results["tuned"]["kl"],
        "copy_rate": results["tuned"]["copy_rate"], "base_copy_rate": results["base"]["copy_rate"],
        "direct_win_rate": results.get("direct", {}).get("win_rate"),
        "direct_kl": results.get("direct", {}).get("kl"),
        "wall_s": results["total"]["wall_s"],
    }
    TrainingRun.objects.filter(id=run.id).update(report=_json_safe({"figures": headline, "plots": plots}))


def copy_detector(project: Project, username: str) -> dict | None:
    """The labeler table's copy-preference detector for one account (what the dashboards show)."""
    from labeling.selectors.quality.labelers import ALPHA, labelers_quality

    for row in labelers_quality(project):
        if row.username == username:
            return {"flags": row.flags, "copy_p_value": row.copy.p_value, "copy_observed": row.copy.observed,
                    "copy_expected": row.copy.expected, "alpha": ALPHA}
    return None


# --- the whole experiment ----------------------------------------------------------------------


def experiment_run(s: ExperimentSettings, *, log: Callable[[str], None] = print, base_dir: Path | None = None) -> dict:
    """Run it all (workers must be consuming the broker); returns the results (also written as JSON).
    Runs on one torch thread (all of them while pretraining) and restores the caller's setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _experiment_run(s, log=log, base_dir=base_dir)
    finally:
        torch.set_num_threads(previous)


def _experiment_run(s: ExperimentSettings, *, log: Callable[[str], None], base_dir: Path | None) -> dict:
    import torch

    from training.rlhf.pretrain import read_corpus

    settings_check(s)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()
    docs = read_corpus(s.corpus)
    train, held = experiment_queries(s, docs)
    if base_dir is None:
        # Nothing else runs while the base is pretrained: every core (1.6× faster on 2 cores than one).
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            base_dir, pretrain_metrics = base_model_ensure(s, docs, train, log)
        finally:
            torch.set_num_threads(1)
    else:
        pretrain_metrics = {}
    user = experiment_user()
    project = experiment_project(s, train, held, user)
    log(f"project {project.slug}: {len(train)} train / {len(held)} held-out queries; base {base_dir}")

    t = time.perf_counter()
    publish_base_comparisons(project, s, base_dir, user, s.labels, log)
    phases = {"sample": time.perf_counter() - t}

    t = time.perf_counter()
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec(kind=s.labeler)], seed=s.seed)
    counts = simulate_labeling(project=project, labelers=labelers, n=s.labels)
    phases["label"] = time.perf_counter() - t
    log(f"simulated labels: {counts.per_labeler}")

    t = time.perf_counter()
    rnd = round_start(project=project, user=user, overrides={
        "base_model": str(base_dir), "seed": s.seed, "reward": s.reward_config(), "ppo": s.ppo_config(),
        "sample": s.sample_config(16)})
    wait_for_runs([], log, round_=rnd)
    rnd.refresh_from_db()
    runs = {r.kind: r for r in rnd.runs.all()}
    if rnd.status != Round.Status.FINISHED:
        bad = next(r for r in runs.values() if r.status != Status.FINISHED)
        raise RuntimeError(f"round {rnd.number} ended {rnd.status}: run {bad.id} ({bad.kind}) {bad.status} "
                           f"{bad.error[-2000:]}{bad.stop_reason}")
    phases["round"] = time.perf_counter() - t

    t = time.perf_counter()
    curve_runs = []
    for n in sorted(c for c in s.curve if c < s.labels):
        snapshot = label_snapshot_at(project, n)
        curve_runs.append((n, run_create(project=project, kind=Kind.FIT_REWARD, base_model=str(base_dir),
                                         seed=s.seed, started_by=user,
                                         config=s.reward_config(), product={"label_snapshot": snapshot})))
    wait_for_runs([r for _, r in curve_runs], log)
    curve_runs.append((rnd.label_snapshot["count"], runs[Kind.FIT_REWARD]))
    phases["curve"] = time.perf_counter() - t

    t = time.perf_counter()
    ppo_run = runs[Kind.PPO]
    results = evaluate(s, project, base_dir, ppo_run, curve_runs, log)
    phases["evaluate"] = time.perf_counter() - t
    results.update({
        "settings": {**dataclasses.asdict(s), "curve": list(s.curve)},
        "project": project.slug, "round": rnd.number, "runs": {k: r.id for k, r in runs.items()},
        "base_model": str(base_dir), "pretrain": pretrain_metrics,
        "queries": {"train": len(train), "held_out": len(held)},
        "labels": counts.per_labeler, "phases_wall_s": phases,
        "total": {"wall_s": time.perf_counter() - wall0, "cpu_s_this_process": time.process_time() - cpu0},
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": [round(x, 2) for x in load0],
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "dashboard_copy_detector": copy_detector(project, labelers[0].user.username),
    })
    folder = artifacts_path(ppo_run) / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, folder)
    results["plots"] = plots
    (folder / "results.json").write_text(json.dumps(_json_safe(results), indent=2, default=str))
    run_report_record(run=ppo_run, results=results, plots=plots)
    results["results_path"] = str(folder / "results.json")
    return results
