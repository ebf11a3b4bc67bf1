"""The labeling hot path as two PostgreSQL functions: one round trip for next, one for submit.

`labeling_next` and `labeling_submit` do, statement for statement, what the services' PostgreSQL path
did in five and three round trips (labeler lock, live lease, expiry, lease; lookup, checks, write),
inside one function call: the calls run as single statements (autocommit, no BEGIN/COMMIT round
trips) and PL/pgSQL keeps each statement's plan for the connection. The service modules document
the rules; their ORM path (SQLite) stays the reference the tests hold both paths to. Other
databases: nothing to do.

The functions live in labeling/sql/ (serving.sql, labels.sql), which holds their current definitions:
this migration installs those, so a fresh database has them from here on and the later loads of a
file (0008) change nothing there. Databases migrated before the files existed got this module's text
of the time and were brought to the files' by those later migrations. The digests say which version
of each file this migration was written for (labels.sql: without 0008's display_position).
"""
from django.conf import settings
from django.db import migrations

from labeling.sql import LoadSQL


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0005_project_calibration_labels_wanted'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        LoadSQL("serving.sql", digest="484ee2374b53ca06", reverse_sql=[
            "DROP FUNCTION IF EXISTS labeling_next(bigint, text, bigint, boolean, timestamptz, interval)"]),
        LoadSQL("labels.sql", digest="41fb7db7facc6221", reverse_sql=[
            "DROP FUNCTION IF EXISTS labeling_submit(bigint, bigint, boolean, integer, boolean, boolean, text, bigint, "
            "integer, timestamptz, timestamptz)"]),
    ]
