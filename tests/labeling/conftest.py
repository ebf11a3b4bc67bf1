import pytest
from django.db import connection


def _postgresql_or_orm(request, settings, setting: str, what: str) -> str:
    """The "orm" param turns `setting` off; the other runs only on PostgreSQL, where `what` exists."""
    if request.param == "orm":
        setattr(settings, setting, False)
    elif connection.vendor != "postgresql":
        pytest.skip(f"{what} exist on PostgreSQL only")
    return request.param


@pytest.fixture(params=["sql-functions", "orm"])
def hotpath(request, settings):
    """Run a test on both paths of next and submit: PostgreSQL's SQL functions and the ORM path."""
    return _postgresql_or_orm(request, settings, "LABELING_SQL_FUNCTIONS", "the hot path's SQL functions")


@pytest.fixture(params=["copy", "orm"])
def dashboard_path(request, settings):
    """Run a test on both ways the dashboards read label columns: PostgreSQL's binary COPY and the ORM."""
    from labeling.selectors.quality import dashboard_cache_clear

    path = _postgresql_or_orm(request, settings, "DASHBOARD_PG_COPY", "the dashboards' binary COPY reads")
    dashboard_cache_clear()
    yield path
    dashboard_cache_clear()
