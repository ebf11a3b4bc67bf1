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
