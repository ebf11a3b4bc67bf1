"""Authentication backend: Django's ModelBackend with permissions read in one query.

ModelBackend reads a user's own permissions and their groups' permissions in two queries on
the first `has_perm` of each request. Every labeling request checks a permission, so on the
hot path (next → submit) that second round trip is paid twice per label. This backend reads
both sets with one query and caches them on the user object for the request, exactly as
ModelBackend does (`_perm_cache`); everything else is ModelBackend's.

TokenAuthenticationWithPermissions (the API's token authentication) goes one step further on
PostgreSQL: the token, its user and those permissions in one fixed statement per request,
prepared once per connection (outside transactions).
"""
from __future__ import annotations

import weakref

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


class ModelBackendOneQuery(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            perms = Permission.objects.all()
            if not user_obj.is_superuser:
                perms = perms.filter(Q(user=user_obj) | Q(group__user=user_obj))
            user_obj._perm_cache = {
                f"{app_label}.{codename}"
                for app_label, codename in perms.values_list("content_type__app_label", "codename")
            }
        return user_obj._perm_cache


def _token_sql(token_model, user_model) -> tuple[str, list[str], list[str]]:
    """SELECT of a token, its user's columns and the user's permissions ("app_label.codename", own and
    groups') as one array, by key. Built once from the models' metadata; parameter: the key."""
    token_fields = [f.attname for f in token_model._meta.concrete_fields]
    user_fields = [f.attname for f in user_model._meta.concrete_fields]
    token_cols = [token_model._meta.get_field(f).column for f in token_fields]
    user_cols = [user_model._meta.get_field(f).column for f in user_fields]
    # The many-to-many tables and their columns, as the models name them.
    own = user_model._meta.get_field("user_permissions")
    groups = user_model._meta.get_field("groups")
    group_perms = groups.related_model._meta.get_field("permissions")
    user_pk, token_user = user_model._meta.pk.column, token_model._meta.get_field("user").column
    sql = f"""
        SELECT {", ".join(f't."{c}"' for c in token_cols)}, {", ".join(f'u."{c}"' for c in user_cols)},
          ARRAY(SELECT ct.app_label || '.' || p.codename
                FROM {Permission._meta.db_table} p JOIN {ContentType._meta.db_table} ct ON ct.id = p.content_type_id
                WHERE p.id IN (SELECT up.{own.m2m_reverse_name()} FROM {own.m2m_db_table()} up
                               WHERE up.{own.m2m_column_name()} = u.{user_pk}
                               UNION
                               SELECT gp.{group_perms.m2m_reverse_name()} FROM {group_perms.m2m_db_table()} gp
                               JOIN {groups.m2m_db_table()} ug
                                 ON ug.{groups.m2m_reverse_name()} = gp.{group_perms.m2m_column_name()}
                               WHERE ug.{groups.m2m_column_name()} = u.{user_pk}))
        FROM {token_model._meta.db_table} t JOIN {user_model._meta.db_table} u ON u.{user_pk} = t.{token_user}
        WHERE t.{token_model._meta.pk.column} = %s"""
    return sql, token_fields, user_fields


_PREPARED = "labeling_token_user"
_prepared_on: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # psycopg2 connections holding it
_ALREADY_PREPARED = "42P05"  # duplicate_prepared_statement
_NO_SUCH_STATEMENT = "26000"  # invalid_sql_statement_name: the server forgot it (DISCARD ALL behind a pooler)


def _token_row(cursor, sql: str, key: str):
    """The token statement's row, by a statement prepared once per connection: planning it (the
    permissions' union) cost four times what running it does. Inside a transaction the plain
    statement runs instead, as a failed EXECUTE there would abort the transaction."""
    if connection.in_atomic_block:
        cursor.execute(sql, [key])
        return cursor.fetchone()
    raw = connection.connection
    for attempt in (1, 2):
        if raw not in _prepared_on:
            try:
                cursor.execute(f"PREPARE {_PREPARED}(text) AS {sql.replace('%s', '$1')}")
            except DatabaseError as error:  # a pooler's server connection that another client prepared
                if getattr(error.__cause__, "pgcode", None) != _ALREADY_PREPARED:
                    raise
            _prepared_on[raw] = True
        try:
            cursor.execute(f"EXECUTE {_PREPARED}(%s)", [key])
            return cursor.fetchone()
        except DatabaseError as error:
            if attempt == 2 or getattr(error.__cause__, "pgcode", None) != _NO_SUCH_STATEMENT:
                raise
            del _prepared_on[raw]


class TokenAuthenticationWithPermissions(TokenAuthentication):
    """DRF's TokenAuthentication that also reads the user's permissions in the same query (PostgreSQL).

    Every labeling request checks a permission; on PostgreSQL the token, the user and the
    permissions then cost one round trip instead of two, and one small fixed SQL statement instead
    of two ORM queries to compile. Nothing is cached beyond the request: the permissions are read
    fresh on every request and put where ModelBackendOneQuery (and ModelBackend) keep a request's
    permissions (`_perm_cache`), so a revoked role takes effect on the very next request, exactly as
    before. Superusers are left to the backend (all permissions); other databases take DRF's path
    (one more query, same answer).
    """

    _sql: tuple[str, list[str], list[str]] | None = None

    def authenticate_credentials(self, key):
        if connection.vendor != "postgresql":
            return super().authenticate_credentials(key)
        token_model, user_model = self.get_model(), get_user_model()
        if TokenAuthenticationWithPermissions._sql is None:
            TokenAuthenticationWithPermissions._sql = _token_sql(token_model, user_model)
        sql, token_fields, user_fields = TokenAuthenticationWithPermissions._sql
        with connection.cursor() as cursor:
            row = _token_row(cursor, sql, key)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        n = len(token_fields)
        token = token_model.from_db(connection.alias, token_fields, row[:n])
        user = user_model.from_db(connection.alias, user_fields, row[n:n + len(user_fields)])
        token.user = user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if not user.is_superuser:
            user._perm_cache = set(row[-1])
        return user, token
