"""Query counts of the dashboard selectors and pages: fixed, whatever the number of labelers or labels (no N+1)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.selectors.quality import labeler_detail, labelers_quality, project_quality, dashboard_cache_clear
from tests.factories import ProjectFactory, UserFactory, make_comparison
from tests.labeling.quality_helpers import add_label

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dashboard_path")]


def _world(labelers: int, comparisons: int, tag: str):
    """A project where every labeler and two researchers answer every (calibration) comparison."""
    project = ProjectFactory(k=4, slug=f"q-{tag}")
    researchers = [UserFactory(username=f"{tag}-r{i}", role=RESEARCHER) for i in range(2)]
    people = [UserFactory(username=f"{tag}-l{i}", role=CONTRACTOR) for i in range(labelers)]
    for n in range(comparisons):
        comparison = make_comparison(project, is_calibration=n % 2 == 0, labels_wanted=8)
        for i, user in enumerate(researchers + people):
            add_label(comparison, user, (n + i) % 4 if i % 5 else None, flag=i == 3)
    return project, people[0]


def _count(fn, *, warm: bool = False, snapshot: bool = False) -> int:
    """Queries of one call: cold (nothing kept from earlier requests), warm (the same call just before)
    or from a snapshot (the call just before, in another process: only the shared snapshot is kept)."""
    dashboard_cache_clear()
    if warm or snapshot:
        fn()
    if snapshot:
        dashboard_cache_clear(shared=False)
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.mark.parametrize("selector", ["overview", "table", "detail"])
def test_selector_queries_do_not_grow_with_labelers_or_labels(selector, django_assert_max_num_queries):
    small, small_labeler = _world(labelers=1, comparisons=2, tag="s")
    large, large_labeler = _world(labelers=5, comparisons=12, tag="l")
    call = {
        "overview": lambda p, u: project_quality(p),
        "table": lambda p, u: labelers_quality(p, sort="-kway"),
        "detail": lambda p, u: labeler_detail(p, labeler_id=u.id),
    }[selector]
    assert _count(lambda: call(small, small_labeler)) == _count(lambda: call(large, large_labeler))
    assert _count(lambda: call(small, small_labeler), warm=True) == _count(lambda: call(large, large_labeler), warm=True)
    assert (_count(lambda: call(small, small_labeler), snapshot=True)
            == _count(lambda: call(large, large_labeler), snapshot=True)
            == _count(lambda: call(large, large_labeler), warm=True))  # the same check and newer rows
    dashboard_cache_clear()
    with django_assert_max_num_queries(8):
        call(large, large_labeler)
    with django_assert_max_num_queries(8):
        call(large, large_labeler)  # warm: the freshness check and the newer rows


@pytest.mark.parametrize("name", ["dashboard-project", "dashboard-labelers", "dashboard-labeler"])
def test_page_queries_do_not_grow(client, researcher, name, django_assert_max_num_queries):
    small, small_labeler = _world(labelers=1, comparisons=2, tag="s")
    large, large_labeler = _world(labelers=5, comparisons=12, tag="l")
    client.force_login(researcher)

    def url(project, labeler):
        kwargs = {"slug": project.slug, **({"user_id": labeler.id} if name == "dashboard-labeler" else {})}
        return reverse(name, kwargs=kwargs)

    client.get(url(small, small_labeler))  # session and permission caches warm
    assert _count(lambda: client.get(url(small, small_labeler))) == _count(lambda: client.get(url(large, large_labeler)))
    dashboard_cache_clear()
    with django_assert_max_num_queries(14):
        assert client.get(url(large, large_labeler)).status_code == 200
