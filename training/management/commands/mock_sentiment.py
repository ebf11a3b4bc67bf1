"""`python3 manage.py mock_sentiment`: the mock-sentiment experiment (issue 6) through the product.

Pretrains (or reuses) a small base LM, publishes best-of-4 comparisons from it with `sample`
runs, has a simulated labeler answer them, runs one round (reward fit + PPO) on the Celery
workers, and evaluates the tuned policy on held-out queries at T=0.7 against the base and
against PPO directly on the true score. Starts its own workers (like `manage.py demo`) unless
`--no-worker`. `--labeler copy` is the copying lesson on a summarization-style project;
`--base-model FOLDER` starts from any saved causal LM instead of pretraining a small one.
"""
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from labeling.errors import InvalidInput
from training.services.experiment import ExperimentSettings, experiment_run, settings_check


class Command(BaseCommand):
    help = "Run the mock-sentiment experiment through the product (pretrain, label, round, evaluate)."

    def add_arguments(self, parser):
        parser.add_argument("--labels", type=int, help="labeled comparisons (default 5000; --quick 400)")
        parser.add_argument("--quick", action="store_true", help="miniature run: a few hundred labels, few PPO steps")
        parser.add_argument("--corpus", default=ExperimentSettings.corpus,
                            help="text file or folder (default: Debian's fortunes)")
        parser.add_argument("--labeler", default="sentiment", help="simulated labeler kind: sentiment or copy")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--project-slug", default="", help="default mock-sentiment (mock-copy for --labeler copy)")
        parser.add_argument("--ppo-episodes", type=int, help="PPO episodes (default 3072; --quick 640)")
        parser.add_argument("--pretrain-steps", type=int, help="base LM pretraining steps (default 3000; --quick 400); "
                            "--labeler copy scales its three stages (3000 + 3000 + 2000) by N / 3000")
        parser.add_argument("--base-model", default="",
                            help="an LM folder (save_pretrained) to start from instead of pretraining one")
        parser.add_argument("--no-direct", action="store_true", help="skip PPO directly on the true score")
        parser.add_argument("--no-worker", action="store_true", help="Celery workers are already running")

    def handle(self, *args, **options):
        overrides = {"corpus": options["corpus"], "labeler": options["labeler"], "seed": options["seed"],
                     "project_slug": options["project_slug"], "direct": not options["no_direct"]}
        for key in ("labels", "ppo_episodes", "pretrain_steps"):
            if options[key] is not None:
                overrides[key] = options[key]
        s = ExperimentSettings.quick(**overrides) if options["quick"] else ExperimentSettings(**overrides)
        base_dir = Path(options["base_model"]).resolve() if options["base_model"] else None
        try:
            if base_dir is not None and not (base_dir / "config.json").is_file():
                raise InvalidInput(f"--base-model {options['base_model']} is not a model folder (no config.json).",
                                   field="base_model")
            settings_check(s, database=False)
            if not options["no_worker"]:  # the embedded default stack may have no tables yet
                settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
                call_command("migrate", interactive=False, verbosity=0)
            settings_check(s)
        except InvalidInput as error:
            raise CommandError(error.message) from None

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one "Loading weights" bar per model load otherwise
        children = [] if options["no_worker"] else self._start_workers()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            results = experiment_run(s, log=lambda line: self.stdout.write(f"[mock] {line}"), base_dir=base_dir)
        except InvalidInput as error:
            raise CommandError(error.message) from None
        finally:
            self._stop(children)
        self._summary(results, wall0, cpu0)

    def _start_workers(self) -> list[subprocess.Popen]:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        settings.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            if folder:
                os.makedirs(folder, exist_ok=True)
        env = {**os.environ, "RLHF_SKIP_BOOTSTRAP": "1", "C_FORCE_ROOT": "1", "PYTHONWARNINGS": "ignore",
               "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        celery = [sys.executable, "-m", "celery", "-A", "config", "--quiet", "worker", "--loglevel", "WARNING"]
        self.stdout.write("[mock] starting a Celery worker (queues training, default)")
        return [subprocess.Popen([*celery, "-Q", "training,default", "-n", "mock@%h", "--concurrency", "1",
                                  "--prefetch-multiplier", "1", "--max-tasks-per-child", "1"], env=env,
                                 start_new_session=True)]

    @staticmethod
    def _stop(children: list[subprocess.Popen]) -> None:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    def _summary(self, r: dict, wall0: float, cpu0: float) -> None:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        t, b = r["tuned"], r["base"]
        lines = ["", f"=== mock experiment ({r['settings']['labeler']} labeler, project {r['project']}) ===",
                 f"base mean score {b['mean_score']:+.3f}, copy rate {b['copy_rate']:.3f}"]
        for p in r["curve"]:
            lines.append(f"{p['labels']:>6} labels: reward model held-out pairwise accuracy "
                         f"{p['pairwise_accuracy']:.3f}"
                         f" ({p['n_pairs']} pairs), true-best {p['true_best_accuracy']:.3f}")
        lines.append(f"tuned (round {r['round']}, PPO run {r['runs']['ppo']}): win rate {t['win_rate']:.3f} "
                     f"(ties {t['tie_share']:.3f}), mean score {t['mean_score']:+.3f}, KL {t['kl']:.2f} nats, "
                     f"copy rate {t['copy_rate']:.3f}")
        if "direct" in r:
            d = r["direct"]
            lines.append(f"direct PPO on the true score ({d['path']}): win rate {d['win_rate']:.3f}, "
                         f"mean score {d['mean_score']:+.3f}, KL {d['kl']:.2f} nats")
        det = r.get("dashboard_copy_detector")
        if det:
            lines.append(f"dashboard flags for the simulated labeler: {det['flags'] or 'none'} "
                         f"(copy detector p = {det['copy_p_value']}, {det['copy_observed']:.0f} picks of the most "
                         f"copying sample vs {det['copy_expected']:.1f} by chance)")
        lines.append(f"wall {time.perf_counter() - wall0:.0f} s; CPU this process {time.process_time() - cpu0:.0f} s, "
                     f"workers {children.ru_utime + children.ru_stime:.0f} s; {os.cpu_count()} cores; "
                     f"load average {r['machine']['load_average_start']} -> {r['machine']['load_average_end']}")
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        lines += [f"uptime: {uptime}", f"wrote {r['results_path']} and {', '.join(r['plots'].values())}"]
        self.stdout.write("\n".join(lines))
