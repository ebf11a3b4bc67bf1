"""The demo's seed: its calibration slices come answered, so every dashboard table has figures on first start."""
import pytest
from django.urls import reverse

from labeling.models import Comparison, Label, Project
from labeling.scorers import scores_for
from labeling.selectors.quality import labelers_quality, project_quality
from labeling.services.demo import DEMO_SLUGS, DEMO_TRAINING, demo_seed, demo_simulated_spec

pytestmark = pytest.mark.django_db


def _best(label: Label, kind: str) -> set[int]:
    entries = sorted(label.comparison.entries.select_related("sample"), key=lambda e: e.position)
    scores = scores_for(kind, context=label.comparison.query.context, texts=[e.sample.text for e in entries])
    return {i for i, s in enumerate(scores) if s == max(scores)}


def test_seeded_calibration_answers_fill_every_dashboard_figure():
    demo_seed()
    for slug in DEMO_SLUGS:
        project = Project.objects.get(slug=slug)
        q = project_quality(project)
        assert q.labeler_researcher.kway.n > 0 and q.labeler_researcher.kway.value is not None
        assert q.researcher_researcher.kway.n > 0
        assert q.majority_items > 0 and q.majority_vs_researchers.kway.n > 0
        assert q.labeler_labeler.items > 0 and q.labeler_labeler.percent is not None
        assert q.weekly and q.by_instructions and q.labels_per_day
        rows = {r.username: r for r in labelers_quality(project)}
        sims = [r for name, r in rows.items() if name.startswith("sim-")]
        assert len(sims) == 2 and all(r.agreement.kway.n > 0 for r in sims)
        # Only the calibration slice is labeled: the queue is left to people (and the demo button).
        assert not Label.objects.filter(comparison__project=project, comparison__is_calibration=False).exists()


def test_researchers_answer_with_the_simulated_labelers_scorer():
    demo_seed()
    for slug in DEMO_SLUGS:
        project = Project.objects.get(slug=slug)
        kind = demo_simulated_spec(project).kind
        calibration = Comparison.objects.filter(project=project, is_calibration=True)
        answers = Label.objects.filter(comparison__in=calibration, labeler__username="researcher")
        assert answers.count() == calibration.count() > 0
        assert all(label.chosen_index in _best(label, kind) for label in answers)
        assert Label.objects.filter(comparison__in=calibration, labeler__username="admin").count() == calibration.count()


def test_dashboard_pages_show_figures_after_the_seed(client, django_user_model):
    demo_seed()
    client.force_login(django_user_model.objects.get(username="researcher"))
    for slug in DEMO_SLUGS:
        page = client.get(reverse("dashboard-project", kwargs={"slug": slug})).content.decode()
        assert "No data yet" not in page and "No labels on researcher-labeled" not in page
        assert "sim-" in client.get(reverse("dashboard-labelers", kwargs={"slug": slug})).content.decode()


def test_a_second_seed_writes_no_more_labels():
    demo_seed()
    labels = Label.objects.count()
    demo_seed()
    assert Label.objects.count() == labels


def test_seed_points_rounds_at_the_demo_base_unless_a_researcher_chose_another(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    demo_seed()
    assert all(p.training_settings["base_model"] == DEMO_TRAINING["base_model"] for p in Project.objects.all())
    old, new = tmp_path / "bases" / "demo-old", tmp_path / "bases" / "demo-new"
    demo_seed(base_model=str(old))
    assert {p.training_settings["base_model"] for p in Project.objects.all()} == {str(old)}
    chosen = Project.objects.get(slug="tldr-summaries")
    chosen.training_settings = {**chosen.training_settings, "base_model": "/models/theirs"}
    chosen.save(update_fields=["training_settings"])
    demo_seed(base_model=str(new))  # a later start with another demo base: only demo bases are replaced
    assert Project.objects.get(slug="positive-continuations").training_settings["base_model"] == str(new)
    assert Project.objects.get(slug="tldr-summaries").training_settings["base_model"] == "/models/theirs"
