import pytest
from django.db import connection


@pytest.fixture(params=["sql-functions", "orm"])
def hotpath(request, settings):
    """Run a test on both paths of next and submit: PostgreSQL's SQL functions and the ORM path."""
    if request.param == "orm":
        settings.LABELING_SQL_FUNCTIONS = False
    elif connection.vendor != "postgresql":
        pytest.skip("the hot path's SQL functions exist on PostgreSQL only")
    return request.param


@pytest.fixture(params=["copy", "orm"])
def dashboard_path(request, settings):
    """Run a test on both ways the dashboards read label columns: PostgreSQL's binary COPY and the ORM."""
    from labeling.selectors_quality import dashboard_cache_clear

    if request.param == "orm":
        settings.DASHBOARD_PG_COPY = False
    elif connection.vendor != "postgresql":
        pytest.skip("the binary COPY exists on PostgreSQL only")
    dashboard_cache_clear()
    yield request.param
    dashboard_cache_clear()
