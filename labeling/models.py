"""The labeling domain: what a contractor is shown and what they answered.

Canonical order vs display order: a Comparison's samples have a fixed canonical order
(ComparisonSample.position). Each Assignment shuffles them for the screen (display_order);
a Label stores the chosen sample's canonical index, so labels of different labelers agree
on what "index 2" means whatever each of them saw on screen.
"""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length


class Project(models.Model):
    class TaskKind(models.TextChoices):
        CONTINUATION = "continuation", "Continuation"
        SUMMARIZATION = "summarization", "Summarization"

    K_MIN, K_MAX = 2, 8

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    task_kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.CONTINUATION)
    k = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(K_MIN), MaxValueValidator(K_MAX)],
        help_text="Samples per comparison (best-of-K).",
    )
    labels_per_comparison = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    calibration_share = models.FloatField(
        default=0.15, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of a labeler's items drawn from the researcher-labeled calibration slice.",
    )
    calibration_labels_wanted = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Labels wanted on each calibration comparison, researchers' and labelers' together: the "
                  "calibration slice is labeled by many people so that their agreement can be measured.",
    )
    is_active = models.BooleanField(default=True)
    training_settings = models.JSONField(
        default=dict, blank=True,
        help_text='Defaults for rounds: base model, PPO/reward configs, "tripwires" thresholds.',
    )
    # Labelers who earn trust (labeling/services/qualification.py): a qualification set before the queue,
    # gold checks in it.
    class LabelType(models.TextChoices):
        BEST_OF_K = "best_of_k", "Best of K"
        PAIRWISE_CONFIDENCE = "pairwise_confidence", "Pairwise, 9-point confidence (K=2)"
        RANKING = "ranking", "Ranking of K with ties"

    label_type = models.CharField(
        max_length=30, choices=LabelType.choices, default=LabelType.BEST_OF_K, db_default=LabelType.BEST_OF_K,
        help_text="best_of_k: pick the best sample; pairwise_confidence (K=2 only): a 9-point scale, 1 = first "
                  "sample definitely better … 9 = second definitely better; ranking: order all K samples, ties "
                  "allowed (labeling/label_types.py).")
    # Per-sample 7-point Likert axes asked after the choice (2020: overall, accuracy, coverage, coherence); [] = none.
    likert_axes = models.JSONField(
        default=list, db_default=[], blank=True,
        help_text='Axes each sample is rated on, 1–7, after the choice, e.g. ["overall", "accuracy", "coverage", '
                  '"coherence"]; empty: no ratings.')
    allow_none_acceptable = models.BooleanField(
        default=False, db_default=False,
        help_text='Labelers may answer "none acceptable" (every sample is bad); they still mark the least bad.')
    qualification_required = models.BooleanField(
        default=False, db_default=False, help_text="New labelers answer the qualification set before the real queue.")
    qualification_threshold = models.FloatField(
        default=0.8, db_default=0.8, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Agreement with the researchers' answers an attempt needs to pass.")
    qualification_items = models.PositiveSmallIntegerField(
        default=5, db_default=5, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Qualification items per attempt (a retry gets items the labeler has not seen).")
    gold_share = models.FloatField(
        default=0.5, db_default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of the researcher-answered calibration comparisons marked gold.")
    gold_feedback = models.BooleanField(
        default=True, db_default=True, help_text="After a gold item the labeler sees the researchers' answer and note.")
    gold_accuracy_threshold = models.FloatField(
        default=0.7, db_default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A labeler whose gold accuracy is surely below this (Wilson 95% upper end) is paused; 0: never.")
    gold_window = models.PositiveSmallIntegerField(
        default=50, db_default=50, validators=[MinValueValidator(5), MaxValueValidator(1000)],
        help_text="Gold accuracy is over the labeler's latest this many gold answers.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("label_comparisons", "Can label comparisons"),
            ("view_research", "Can see researcher pages, dashboards and calibration answers"),
            ("manage_projects", "Can create projects, import and export data"),
            ("administer", "Can administer runs and people"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=2) & Q(k__lte=8), name="project_k_between_2_and_8"),
            models.CheckConstraint(
                condition=Q(label_type__in=["best_of_k", "ranking"]) | Q(label_type="pairwise_confidence", k=2),
                name="project_label_type_valid",
            ),
            models.CheckConstraint(condition=Q(labels_per_comparison__gte=1), name="project_labels_wanted_positive"),
            models.CheckConstraint(
                condition=Q(calibration_share__gte=0) & Q(calibration_share__lte=1), name="project_calibration_share_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Instructions(models.Model):
    """One version of a project's labeling instructions (Markdown written by researchers)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="instructions")
    version = models.PositiveIntegerField()
    body = models.TextField(help_text="Markdown.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="instructions_unique_version")]
        verbose_name_plural = "instructions"

    def __str__(self) -> str:
        return f"{self.project} v{self.version}"


class InstructionsAck(models.Model):
    """A labeler has read this version; they may label under it."""

    instructions = models.ForeignKey(Instructions, on_delete=models.CASCADE, related_name="acks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="instructions_acks")
    acknowledged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instructions", "user"], name="instructions_ack_unique")]


class Query(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        VALID = "valid", "Validation"
        TEST = "test", "Test"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="queries")
    context = models.TextField()
    reference = models.TextField(blank=True, help_text="Optional reference continuation or summary.")
    external_id = models.CharField(max_length=200, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "queries"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], condition=~Q(external_id=""), name="query_unique_external_id"
            )
        ]

    def __str__(self) -> str:
        return self.external_id or f"query {self.pk}"


class Sample(models.Model):
    """One model output (or reference text) for a query. Untrusted text: always rendered escaped."""

    REFERENCE = "reference"

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="samples")
    text = models.TextField()
    tokens = models.JSONField(null=True, blank=True, help_text="Token ids, when the sample came as tokens.")
    source = models.CharField(
        max_length=200, help_text='A policy checkpoint name, "reference", or "baseline:NAME".'
    )
    generation_params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The text's length in characters, kept by the database itself (a stored generated column, so every writer,
    # bulk SQL included, fills it). The leaderboard's length control reads it for every sample of a project:
    # length() over 200k texts was a third of its cold query (bench/leaderboard_load.py).
    text_length = models.GeneratedField(expression=Length("text"), output_field=models.PositiveIntegerField(),
                                        db_persist=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["source"])]

    def __str__(self) -> str:
        return f"sample {self.pk} ({self.source})"


class Import(models.Model):
    """One file imported into a project: what it was, who ran it, what it wrote and under whose accounts.

    Imported comparisons and labels point here (`source_import`), so a label written by an import
    is told from one a person gave on the labeling page. `accounts_created` is also how an import
    account is known: a later import of the same project may write under it without listing it.
    """

    class Kind(models.TextChoices):
        QUERIES = "queries", "Queries"
        COMPARISONS = "comparisons", "Comparisons"

    class Via(models.TextChoices):
        API = "api", "API"
        COMMAND = "command", "Management command"
        CODE = "code", "Code"
        WEB = "web", "Import page"

    class Status(models.TextChoices):
        # An import in the request is written DONE in its one transaction; only a task's is seen before.
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    layout = models.CharField(max_length=10, blank=True,
                              help_text='"2019" or "2020" for comparisons; blank for queries.')
    file_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64,
                              help_text="Of the file's bytes: the same file imported again is recognised.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    via = models.CharField(max_length=10, choices=Via.choices, default=Via.CODE)
    batch = models.CharField(max_length=100, blank=True)
    is_calibration = models.BooleanField(default=False)
    lines = models.PositiveIntegerField(default=0)
    queries_created = models.PositiveIntegerField(default=0)
    samples_created = models.PositiveIntegerField(default=0)
    comparisons_created = models.PositiveIntegerField(default=0)
    labels_created = models.PositiveIntegerField(default=0)
    accounts_created = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+",
        help_text="Contractor accounts (no usable password) this import created for the file's labelers.")
    accounts_existing = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+",
        help_text="Accounts that existed before and were written under because the importer listed them.")
    accounts_reused = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+",
        help_text="Import accounts of earlier imports of this project written under again (no listing needed).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    progress_done = models.PositiveIntegerField(default=0, help_text="Records read so far (a task's import).")
    progress_total = models.PositiveIntegerField(default=0, help_text="Records in the file (a task's import).")
    error = models.TextField(blank=True, help_text="Why a task's import failed; it wrote nothing.")
    options = models.JSONField(default=dict, blank=True,
                               help_text="What a task's import runs with: layout, tokenizer, pad_id, labeler, "
                                         "labelers_existing.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "sha256"], name="import_project_sha256")]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.kind}, {self.file_name or 'no name'})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def progress_pct(self) -> int:
        return round(100 * self.progress_done / self.progress_total) if self.progress_total else 0


class Comparison(models.Model):
    """K samples of one query to choose the best from.

    `open_slots` is how many more labelers may lease it now: labels wanted minus submitted
    labels minus live leases. Serving decrements it under a row lock; expiry and skips give
    slots back. It is the one number the hot query filters on.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"  # e.g. its run's andon cord was pulled

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="comparisons")
    samples = models.ManyToManyField(Sample, through="ComparisonSample", related_name="comparisons")
    labels_wanted = models.PositiveSmallIntegerField(default=1)
    label_count = models.PositiveIntegerField(default=0)
    open_slots = models.IntegerField(default=1)
    is_calibration = models.BooleanField(default=False, help_text="Also labeled by researchers; hidden from labelers.")
    # A qualification item: a copy of a researcher-answered comparison, served only by the qualification
    # pool (never by the live queue: its open_slots stays 0, a constraint holds it), left out of exports
    # and reward fits.
    is_qualification = models.BooleanField(default=False, db_default=False, help_text="Served only to labelers qualifying.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    batch = models.CharField(max_length=100, blank=True, help_text="Import or sampling batch tag.")
    external_id = models.CharField(max_length=200, blank=True)
    source_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="comparisons",
        help_text="The sampling run that published it; the andon cord on that run withdraws it.",
    )
    source_import = models.ForeignKey(
        Import, null=True, blank=True, on_delete=models.RESTRICT, related_name="comparisons",
        help_text="The import that created it; null for comparisons made here.",
    )
    # What the shortcut detectors need of the texts (labeling.textstats.comparison_text_figures), kept
    # at write time: computing n-gram overlaps for 200k samples on a dashboard's first request cost
    # seconds. NULL means not computed yet (rows written around the services); the dashboards fill them.
    length_top = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False, help_text="Bit mask of the samples tied for the longest text.")
    copy_top = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False,
        help_text="Bit mask of the samples tied for the highest word 3-gram overlap with the context.")
    text_chars = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Characters of the context and every sample.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["project", "is_calibration", "id"],
                condition=Q(open_slots__gt=0, status="active"),
                name="comparison_servable",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="comparison_open_slots_nonnegative"),
            models.CheckConstraint(condition=Q(label_count__lte=models.F("labels_wanted")), name="comparison_not_overlabeled"),
            models.CheckConstraint(condition=Q(is_qualification=False) | Q(open_slots=0),
                                   name="comparison_qualification_never_served"),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk}"


class ComparisonSample(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="entries")
    sample = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(help_text="Canonical index within the comparison.")
    # Copies of the sample's source and text length, written with the row (`ComparisonSample.of`; a comparison's
    # samples never change): the leaderboard's first read of a project takes each sample's policy and length
    # from here instead of joining every sample, half of that read's time at 200k samples
    # (bench/leaderboard_load.py). No default: a writer that does not fill them fails on the NOT NULL length.
    sample_source = models.CharField(max_length=200, editable=False, help_text="The sample's source, copied.")
    sample_text_length = models.PositiveIntegerField(editable=False, help_text="The sample's text length, copied.")

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "position"], name="comparison_sample_unique_position"),
            models.UniqueConstraint(fields=["comparison", "sample"], name="comparison_sample_unique_sample"),
        ]

    @classmethod
    def of(cls, comparison: Comparison, sample: Sample, position: int) -> "ComparisonSample":
        """The row placing `sample` at `position` of `comparison`, with its copies of the sample's fields."""
        return cls(comparison=comparison, sample=sample, position=position, sample_source=sample.source,
                   sample_text_length=len(sample.text))


class Assignment(models.Model):
    """A lease of one comparison to one labeler, with the order its samples are shown in."""

    class State(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    display_order = models.JSONField(help_text="display_order[p] = canonical index of the sample shown at position p.")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.LEASED)

    class Meta:
        ordering = ["id"]
        constraints = [
            # The last line of defence: nobody labels a comparison twice.
            models.UniqueConstraint(fields=["comparison", "labeler"], name="assignment_unique_comparison_labeler"),
        ]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="assignment_state_expiry"),
            models.Index(fields=["labeler", "state"], name="assignment_labeler_state"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.state})"


class Label(models.Model):
    """A labeler's answer to an assignment: one per assignment, so a double submit stores one row."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="label")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="labels")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="labels")
    chosen_index = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Canonical index; null when skipped.")
    # = assignment.display_order.index(chosen_index), kept so that the position-bias checks read labels alone.
    display_position = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Where on screen the chosen sample was (0 = A); null when skipped.")
    unsure = models.BooleanField(default=False)
    # Pairwise-confidence projects only (labeling/label_types.PairwiseConfidence): canonical, 1 = sample 0
    # definitely better … 5 = no preference … 9 = sample 1 definitely better. Written after the submit.
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, db_default=None,
        help_text="9-point scale relative to canonical order (1: sample 0 definitely better, 9: sample 1).")
    # Ranking projects only (labeling/label_types.Ranking): the rank of each sample in canonical order, 1 = best,
    # equal ranks tie, dense (e.g. [2, 1, 2, 3]); chosen_index is the first sample the labeler put in the top tier.
    ranking = models.JSONField(null=True, blank=True,
                               help_text="Rank of each sample in canonical order, 1 = best, equal = tie.")
    # Projects with likert_axes: {axis: [rating 1–7 of each sample in canonical order]}.
    likert = models.JSONField(null=True, blank=True,
                              help_text="Per-sample 1–7 ratings in canonical order, by axis.")
    # Projects with allow_none_acceptable: every sample is bad (chosen_index is then the least bad).
    none_acceptable = models.BooleanField(default=False, db_default=False)
    skipped = models.BooleanField(default=False)
    skip_reason = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField()
    instructions = models.ForeignKey(Instructions, null=True, blank=True, on_delete=models.PROTECT, related_name="labels")
    source_import = models.ForeignKey(
        Import, null=True, blank=True, on_delete=models.RESTRICT, related_name="labels",
        help_text="The import that wrote it (duration 0, identity order); null for labels given here.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(skipped=True, chosen_index__isnull=True) | Q(skipped=False, chosen_index__isnull=False)),
                name="label_chosen_xor_skipped",
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | (Q(confidence__gte=1) & Q(confidence__lte=9) & Q(skipped=False)),
                name="label_confidence_1_9",
            ),
            models.CheckConstraint(
                condition=(Q(ranking__isnull=True) & Q(likert__isnull=True) & Q(none_acceptable=False)) | Q(skipped=False),
                name="label_skip_has_no_answer_parts",
            ),
            models.UniqueConstraint(fields=["comparison", "labeler"], name="label_unique_comparison_labeler"),
        ]
        indexes = [models.Index(fields=["labeler", "created_at"], name="label_labeler_created")]

    def __str__(self) -> str:
        return f"label {self.pk}"


class SampleFlag(models.Model):
    """A labeler's note on one sample of a label: a problem, optionally with a corrected text."""

    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="flags")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="flags")
    note = models.TextField()
    suggested_correction = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class SimulatedLabeler(models.Model):
    """A user account whose labels a scorer chooses (see labeling/scorers.py).

    The user is an ordinary contractor with an unusable password; its labels go through the same
    services as a person's and differ in storage only by who gave them. This record says how
    it chooses: the kind of scorer, the softmax temperature, and the seed of its draws.
    """

    class Kind(models.TextChoices):
        SENTIMENT = "sentiment", "Sentiment (VADER)"
        LENGTH = "length", "Length"
        COPY = "copy", "Copies the context"
        POSITION = "position", "Display position (slot A)"
        RANDOM = "random", "Random"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="simulated_labeler")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    temperature = models.FloatField(validators=[MinValueValidator(0.0)], help_text="0 = always the best-scored sample.")
    seed = models.BigIntegerField(help_text="Seeds this labeler's draws: same seed, same choices.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]
        constraints = [
            models.CheckConstraint(condition=Q(temperature__gte=0), name="simulated_labeler_temperature_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.kind}, T={self.temperature:g})"


class GoldAnswer(models.Model):
    """The researchers' answer to a gold or qualification comparison, with the note a labeler sees after answering."""

    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="gold_answer")
    chosen_index = models.PositiveSmallIntegerField(help_text="Canonical index of the researchers' answer.")
    note = models.TextField(blank=True, help_text="Why: shown to the labeler after they answer.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gold answer of {self.comparison}"


class LabelerStanding(models.Model):
    """Where a labeler stands in a project. No row: admitted, unless the project requires qualification."""

    class Status(models.TextChoices):
        QUALIFYING = "qualifying", "Qualifying"
        QUALIFIED = "qualified", "Qualified"
        PAUSED = "paused", "Paused"
        REVOKED = "revoked", "Revoked"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="standings")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standings")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUALIFYING)
    reason = models.TextField(blank=True, help_text="Why the status is what it is (shown to the labeler).")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="Null when the system changed it.")
    changed_at = models.DateTimeField(auto_now_add=True)
    gold_answered = models.PositiveIntegerField(default=0, help_text="Gold answers in the current window.")
    gold_correct = models.PositiveIntegerField(default=0, help_text="Of those, equal to the researchers' answer.")
    gold_since = models.DateTimeField(
        null=True, blank=True, help_text="Gold answers before this (a resume) no longer count.")

    class Meta:
        ordering = ["project", "labeler"]
        constraints = [models.UniqueConstraint(fields=["project", "labeler"], name="standing_unique_project_labeler")]

    def __str__(self) -> str:
        return f"{self.labeler} in {self.project}: {self.status}"


class StandingChange(models.Model):
    """One change of a standing, kept: who (null: the system), when, to what and why."""

    standing = models.ForeignKey(LabelerStanding, on_delete=models.CASCADE, related_name="changes")
    status = models.CharField(max_length=12, choices=LabelerStanding.Status.choices)
    reason = models.TextField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class QualificationAttempt(models.Model):
    """One pass of a labeler through `items` qualification comparisons; scored when the last is answered."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="qualification_attempts")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField(help_text="1 for the first attempt, 2 for the first retry, …")
    items = models.PositiveSmallIntegerField()
    answered = models.PositiveSmallIntegerField(default=0)
    correct = models.PositiveSmallIntegerField(default=0)
    too_fast = models.PositiveSmallIntegerField(default=0, help_text="Answers faster than reading the texts.")
    duration_ms_total = models.PositiveBigIntegerField(default=0)
    passed = models.BooleanField(null=True, help_text="Null while under way.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "labeler", "number"]
        constraints = [models.UniqueConstraint(fields=["project", "labeler", "number"], name="attempt_unique_number")]

    @property
    def score(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def mean_seconds(self) -> float | None:
        return self.duration_ms_total / 1000 / self.answered if self.answered else None
