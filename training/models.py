"""Django side of training: runs, rounds, checkpoints, metrics and andon pulls.

The run row, not the broker, owns a run's fate (RELIABILITY.md): it holds the status, the
lease (owner and expiry) that a worker claims with one conditional UPDATE and renews every
step, the attempt count, the trainer's pid, and the stop request.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

# Sample.source of what the base model (rho) wrote: beside the models, for the samplers and the win-rate reads.
BASE_POLICY_SOURCE = "baseline:base-policy"


class Round(models.Model):
    """One turn of the loop: fit a reward model on a label snapshot, PPO, sample a new batch."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    label_snapshot = models.JSONField(default=dict, help_text="max_label_id and count of labels the round trains on")
    # An over-optimisation sweep (training/services/sweep.py): {"betas": [...]}, one PPO and one sample run per β
    # against the round's one reward model; empty for a plain round.
    sweep = models.JSONField(default=dict, blank=True, help_text="The KL coefficients of a sweep round; empty otherwise.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="round_unique_number")]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"


class TrainingRun(models.Model):
    """One fit_reward, ppo or sample run. What it was asked to do and what it produced are kept apart:
    `config` is the library's (what `training.rlhf` or the sampler reads), `product` is ours (tripwires,
    the label snapshot, online publishing), `report` is written after the run (the experiment's figures)."""

    # The keys of `product`: never passed to the library, so never in `config`.
    # stored_tokens (reward section): train on the token ids an import stored with each sample (2020), not on
    # its text tokenised again; the import's tokenizer must be the base model's.
    # gpus (ppo and reward sections): ranks under torchrun, one per GPU (training/services/ranks.py).
    PRODUCT_KEYS = ("label_snapshot", "tripwires", "publish_every", "online_sample", "task", "stored_tokens", "gpus")

    class Kind(models.TextChoices):
        FIT_REWARD = "fit_reward", "Fit reward model"
        PPO = "ppo", "PPO"
        SAMPLE = "sample", "Sample comparisons"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        STOP_REQUESTED = "stop_requested", "Stop requested"
        STOPPED = "stopped", "Stopped"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        ABORTED = "aborted", "Aborted"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.STOP_REQUESTED)
    ENDED = (Status.STOPPED, Status.FINISHED, Status.FAILED, Status.ABORTED)

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="runs")
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True,
                              help_text="RewardFitConfig or PPOConfig fields, or a sample run's sampling settings.")
    product = models.JSONField(default=dict, blank=True,
                               help_text="The product's settings of the run (TrainingRun.PRODUCT_KEYS), not the library's.")
    report = models.JSONField(default=dict, blank=True, help_text="What the run produced for its page, e.g. figures.")
    seed = models.BigIntegerField(default=0)
    base_model = models.CharField(max_length=300, help_text='"tiny", a Hugging Face id, or a local folder.')
    reward_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   help_text="The fit_reward run whose model PPO optimises.")
    policy_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   help_text="The PPO run whose policy a sample run draws from.")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    # Progress
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)

    # Lease: claimed with one conditional UPDATE, renewed every step (services/leases.py).
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    pid = models.IntegerField(null=True, blank=True, help_text="The trainer process, for the andon escalation.")
    hostname = models.CharField(max_length=200, blank=True)

    # Stop request (andon cord)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stop_reason = models.TextField(blank=True)
    unresponsive_at = models.DateTimeField(null=True, blank=True, help_text="Stop not acknowledged by the deadline.")

    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("start_runs", "Can start rounds and runs"), ("manage_runs", "Can resume and abort runs")]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="run_status_lease"),
            models.Index(fields=["project", "kind", "status"], name="run_project_kind_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


class Checkpoint(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="Folder under ARTIFACTS_DIR.")
    sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    is_final = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "-step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_step")]

    def __str__(self) -> str:
        return f"{self.run} @ {self.step}"

    @property
    def name(self) -> str:
        return f"run{self.run_id}-step{self.step}"


class RunMetric(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    key = models.CharField(max_length=80, help_text="group/name, e.g. objective/kl")
    value = models.FloatField(null=True, help_text="null for NaN or inf")

    class Meta:
        ordering = ["run", "key", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "key", "step"], name="metric_unique_point")]


class AndonPull(models.Model):
    """Someone (or a tripwire) pulled the cord on a run's policy; kept forever as the audit log.

    `run` is the run whose policy the puller saw (the PPO run behind a sample run's comparison). What
    the pull withdrew and stopped is kept, so that a dismissal gives back exactly that. While open,
    confirmed or aborted it quarantines the run's checkpoints (selectors.andon.run_quarantine)."""

    class Resolution(models.TextChoices):
        OPEN = "", "Open"
        RESUMED = "resumed", "Resumed"
        ABORTED = "aborted", "Aborted"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"

    # Resolutions that keep the run's checkpoints quarantined.
    QUARANTINE = (Resolution.OPEN, Resolution.CONFIRMED, Resolution.ABORTED)

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="andon_pulls")
    comparison = models.ForeignKey("labeling.Comparison", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="The comparison the puller was shown, if any.")
    source = models.CharField(max_length=200, blank=True,
                              help_text="The checkpoint name on the samples the puller saw, e.g. run5-step3.")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The checkpoint row of `source`, when there is one.")
    withdrawn = models.ManyToManyField(
        "labeling.Comparison", blank=True, related_name="+",
        help_text="Comparisons this pull took out of the queue (a dismissal returns them).")
    stopped = models.ManyToManyField(TrainingRun, blank=True, related_name="stopped_by_pulls",
                                     help_text="Runs this pull stopped (resumable once it is dismissed).")
    exclude_labels = models.BooleanField(
        default=False, help_text="Confirmed: reward fits leave out the labels of the withdrawn comparisons.")
    pulled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    role = models.CharField(max_length=20, help_text="contractor, researcher, admin, or tripwire")
    tripwire = models.CharField(max_length=40, blank=True, help_text="which automatic check pulled it")
    reason = models.TextField()
    at_step = models.PositiveIntegerField(
        null=True, blank=True, help_text="the run's last completed step when the cord was pulled"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, default=Resolution.OPEN, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one open pull per run.
            models.UniqueConstraint(fields=["run"], condition=Q(resolution=""), name="andon_one_open_pull_per_run"),
        ]

    def __str__(self) -> str:
        return f"andon on {self.run} by {self.role}"
