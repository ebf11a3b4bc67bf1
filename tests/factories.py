"""factory_boy factories for the labeling domain."""
import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling import models
from labeling.roles import user_set_role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            user_set_role(self, extracted)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    k = 4
    labels_per_comparison = 1
    calibration_share = 0.0


class QueryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Query

    project = factory.SubFactory(ProjectFactory)
    context = factory.Sequence(lambda n: f"Context number {n}: it was a dark and stormy night.")


class SampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Sample

    query = factory.SubFactory(QueryFactory)
    text = factory.Sequence(lambda n: f" and then sample {n} happened.")
    source = "policy:base"


def make_comparison(project, *, is_calibration=False, labels_wanted=None, texts=None):
    """A comparison with project.k fresh samples of a fresh query."""
    from labeling.services import comparison_create

    query = QueryFactory(project=project)
    texts = texts or [f" sample {i} of query {query.id}" for i in range(project.k)]
    samples = [SampleFactory(query=query, text=t) for t in texts]
    return comparison_create(
        project=project, query=query, samples=samples, is_calibration=is_calibration, labels_wanted=labels_wanted
    )


def make_assignment(project, labeler, **kwargs):
    from labeling.services import comparison_next_for_labeler

    return comparison_next_for_labeler(project=project, labeler=labeler, now=kwargs.pop("now", None) or timezone.now())


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "training.TrainingRun"

    project = factory.SubFactory(ProjectFactory)
    kind = "ppo"
    base_model = "tiny"
    config = factory.LazyFunction(dict)


def make_label(comparison, labeler, *, chosen_index=None, display_order=None, skip_reason="", **fields):
    """A submitted assignment and its label, written directly (for selector tests that need exact answers).
    `chosen_index` is canonical; None skips. The comparison's counters are not touched."""
    now = timezone.now()
    k = comparison.entries.count()
    order = display_order or list(range(k))
    assignment = models.Assignment.objects.create(
        comparison=comparison, labeler=labeler, display_order=order, leased_at=now,
        expires_at=now, state=models.Assignment.State.SUBMITTED,
    )
    return models.Label.objects.create(
        assignment=assignment, comparison=comparison, labeler=labeler, chosen_index=chosen_index,
        display_position=None if chosen_index is None else order.index(chosen_index),
        skipped=chosen_index is None, skip_reason=skip_reason, duration_ms=fields.pop("duration_ms", 1000), **fields,
    )
