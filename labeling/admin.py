"""Django admin for the labeling domain.

Labels, their assignments, flags and instruction acknowledgements are evidence of what a person
answered under which instructions, and import records of who wrote which labels under whose
accounts: the admin shows them read-only (no add, change or delete).
Published instructions are read-only too (labels point at the version they were given under;
publish a new version instead). Counters that services keep consistent (label_count,
open_slots) are read-only on comparisons. Large foreign keys use raw id widgets. Saving a
sample, a query or a comparison refreshes the text figures of the comparisons it touches (the
dashboards' length, copy and too-fast detectors read them).
"""
from django.contrib import admin

from labeling.models import (
    Assignment,
    Comparison,
    ComparisonSample,
    GoldAnswer,
    Import,
    Instructions,
    InstructionsAck,
    Label,
    LabelerStanding,
    Project,
    QualificationAttempt,
    Query,
    Sample,
    SampleFlag,
    SimulatedLabeler,
    StandingChange,
)
from labeling.services import comparisons_text_figures_fill


class TextFiguresRefresh:
    """After a save (and its inlines), recompute the text figures of the comparisons it may have changed."""

    def comparisons_touched(self, obj) -> list[int]:
        raise NotImplementedError

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        comparisons_text_figures_fill(comparison_ids=self.comparisons_touched(form.instance), refresh=True)


class EvidenceAdmin(admin.ModelAdmin):
    """View-only: every field read-only, nothing added, changed or deleted through the admin."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task_kind", "k", "labels_per_comparison", "calibration_share",
                    "calibration_labels_wanted", "is_active", "created_at"]
    list_filter = ["is_active", "task_kind", "k"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    raw_id_fields = ["created_by"]

    def get_readonly_fields(self, request, obj=None):
        # K fixes how many samples every comparison has; changing it would orphan existing data.
        return ["k", "created_by", "created_at"] if obj is not None else ["created_by", "created_at"]


@admin.register(Instructions)
class InstructionsAdmin(EvidenceAdmin):
    list_display = ["project", "version", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["body"]


@admin.register(InstructionsAck)
class InstructionsAckAdmin(EvidenceAdmin):
    list_display = ["instructions", "user", "acknowledged_at"]
    list_filter = ["instructions__project"]
    search_fields = ["user__username"]
    list_select_related = ["instructions__project", "user"]


class SampleInline(admin.TabularInline):
    model = Sample
    fields = ["text", "source", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0
    show_change_link = True


@admin.register(Query)
class QueryAdmin(TextFiguresRefresh, admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "split", "created_at"]
    list_filter = ["project", "split"]
    search_fields = ["external_id", "context"]
    raw_id_fields = ["project"]
    inlines = [SampleInline]

    def comparisons_touched(self, obj) -> list[int]:
        return list(Comparison.objects.filter(query=obj).values_list("id", flat=True))


@admin.register(Sample)
class SampleAdmin(TextFiguresRefresh, admin.ModelAdmin):
    list_display = ["id", "query", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["text", "source", "query__external_id"]
    raw_id_fields = ["query"]
    list_select_related = ["query"]

    def comparisons_touched(self, obj) -> list[int]:
        return list(ComparisonSample.objects.filter(sample=obj).values_list("comparison_id", flat=True))


class ComparisonSampleInline(admin.TabularInline):
    model = ComparisonSample
    fields = ["position", "sample"]
    raw_id_fields = ["sample"]
    extra = 0

    def get_readonly_fields(self, request, obj=None):
        # Labels store canonical indices: once a comparison exists, its samples' positions are fixed.
        return ["position", "sample"] if obj is not None else []

    def has_add_permission(self, request, obj=None) -> bool:
        return obj is None

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None


@admin.register(Comparison)
class ComparisonAdmin(TextFiguresRefresh, admin.ModelAdmin):
    list_display = ["id", "project", "query", "status", "is_calibration", "label_count", "labels_wanted",
                    "open_slots", "batch", "created_at"]
    list_filter = ["project", "status", "is_calibration", "batch"]
    search_fields = ["external_id", "batch", "query__external_id"]
    raw_id_fields = ["project", "query", "source_run"]
    # Serving keeps labels_wanted, label_count and open_slots consistent; edits here would break that.
    readonly_fields = ["labels_wanted", "label_count", "open_slots", "source_import", "created_at"]
    list_select_related = ["project", "query"]
    inlines = [ComparisonSampleInline]

    def comparisons_touched(self, obj) -> list[int]:
        return [obj.id]


@admin.register(ComparisonSample)
class ComparisonSampleAdmin(EvidenceAdmin):
    """Canonical positions: labels point at them, so they are shown, not edited (see the comparison's inline)."""

    list_display = ["id", "comparison", "position", "sample"]
    list_filter = ["comparison__project"]
    search_fields = ["comparison__external_id", "sample__text"]


@admin.register(Assignment)
class AssignmentAdmin(EvidenceAdmin):
    list_display = ["id", "comparison", "labeler", "state", "leased_at", "expires_at"]
    list_filter = ["state", "comparison__project"]
    search_fields = ["labeler__username"]
    list_select_related = ["labeler"]


class SampleFlagInline(admin.TabularInline):
    model = SampleFlag
    fields = ["sample", "note", "suggested_correction", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Label)
class LabelAdmin(EvidenceAdmin):
    list_display = ["id", "comparison", "labeler", "chosen_index", "unsure", "skipped", "duration_ms", "created_at"]
    list_filter = ["skipped", "unsure", "comparison__project", "comparison__is_calibration"]
    search_fields = ["labeler__username", "skip_reason"]
    list_select_related = ["labeler"]
    date_hierarchy = "created_at"
    inlines = [SampleFlagInline]


@admin.register(Import)
class ImportAdmin(EvidenceAdmin):
    """Who imported which file, and under whose accounts its labels were written."""

    list_display = ["id", "project", "kind", "layout", "file_name", "imported_by", "via", "lines", "labels_created",
                    "created_at"]
    list_filter = ["project", "kind", "via"]
    search_fields = ["file_name", "sha256", "imported_by__username"]
    list_select_related = ["project", "imported_by"]


@admin.register(SampleFlag)
class SampleFlagAdmin(EvidenceAdmin):
    list_display = ["id", "label", "sample", "created_at"]
    search_fields = ["note", "suggested_correction"]
    list_filter = ["label__comparison__project"]


@admin.register(SimulatedLabeler)
class SimulatedLabelerAdmin(admin.ModelAdmin):
    """Temperature and seed may be changed here. The accounts are made by `manage.py simulate_labelers`
    (never added here: that would turn a person's account into a simulated one), and the account and
    kind stay fixed, since its labels were chosen by that kind."""

    list_display = ["user", "kind", "temperature", "seed", "created_at"]
    list_filter = ["kind"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "kind", "created_at"]
    list_select_related = ["user"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# Labelers' trust (labeling/services/qualification.py): view-only here; researchers admit, revoke, resume and send
# back on the project's trust page, where every change keeps its reason.
@admin.register(GoldAnswer)
class GoldAnswerAdmin(EvidenceAdmin):
    list_display = ["comparison", "chosen_index", "created_by", "created_at"]
    list_select_related = ["comparison", "created_by"]


@admin.register(LabelerStanding)
class LabelerStandingAdmin(EvidenceAdmin):
    list_display = ["project", "labeler", "status", "gold_correct", "gold_answered", "changed_by", "changed_at"]
    list_filter = ["project", "status"]
    search_fields = ["labeler__username", "reason"]
    list_select_related = ["project", "labeler", "changed_by"]


@admin.register(StandingChange)
class StandingChangeAdmin(EvidenceAdmin):
    list_display = ["standing", "status", "changed_by", "created_at"]
    list_filter = ["status"]
    search_fields = ["reason", "standing__labeler__username"]


@admin.register(QualificationAttempt)
class QualificationAttemptAdmin(EvidenceAdmin):
    list_display = ["project", "labeler", "number", "answered", "correct", "too_fast", "passed", "started_at"]
    list_filter = ["project", "passed"]
    search_fields = ["labeler__username"]
    list_select_related = ["project", "labeler"]
