import pytest

from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER
from tests.factories import ProjectFactory, UserFactory


@pytest.fixture
def contractor(db):
    return UserFactory(username="contractor1", role=CONTRACTOR)


@pytest.fixture
def other_contractor(db):
    return UserFactory(username="contractor2", role=CONTRACTOR)


@pytest.fixture
def researcher(db):
    return UserFactory(username="researcher1", role=RESEARCHER)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin1", role=ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def project(db):
    return ProjectFactory(k=4)


@pytest.fixture(autouse=True)
def _artifacts_per_test(settings, tmp_path_factory):
    """Run ids restart in every test database: each test gets its own artifacts folder."""
    settings.ARTIFACTS_DIR = tmp_path_factory.mktemp("artifacts")


@pytest.fixture(autouse=True)
def _dashboard_cache_cold():
    """Every test starts without kept label columns or shared snapshots (ids repeat across tests)."""
    from labeling.selectors.quality import dashboard_cache_clear

    dashboard_cache_clear()
    yield
    dashboard_cache_clear()
