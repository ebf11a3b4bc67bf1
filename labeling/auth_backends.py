"""Authentication backend: Django's ModelBackend with permissions read in one query.

ModelBackend reads a user's own permissions and their groups' permissions in two queries on
the first `has_perm` of each request. Every labeling request checks a permission, so on the
hot path (next → submit) that second round trip is paid twice per label. This backend reads
both sets with one query and caches them on the user object for the request, exactly as
ModelBackend does (`_perm_cache`); everything else is ModelBackend's.
"""
from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import CharField, F, OuterRef, Q, Value
from django.db.models.functions import Concat
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


def _permissions_subquery() -> ArraySubquery:
    """The token's user's permissions ("app_label.codename", own and groups'), as one array column."""
    dotted = Concat(F("content_type__app_label"), Value("."), F("codename"), output_field=CharField())
    own_or_groups = Q(user=OuterRef("user_id")) | Q(group__user=OuterRef("user_id"))
    return ArraySubquery(Permission.objects.filter(own_or_groups).annotate(dotted=dotted).values("dotted"))


class TokenAuthenticationWithPermissions(TokenAuthentication):
    """DRF's TokenAuthentication that also reads the user's permissions in the same query (PostgreSQL).

    Every labeling request checks a permission; on PostgreSQL the token, the user and the
    permissions then cost one round trip instead of two. Nothing is cached beyond the request:
    the array is read fresh on every request and put where ModelBackendOneQuery (and
    ModelBackend) keep a request's permissions (`_perm_cache`), so a revoked role takes effect on
    the very next request, exactly as before. Superusers are left to the backend (all
    permissions), as are other databases (one more query, same answer).
    """

    def authenticate_credentials(self, key):
        model = self.get_model()
        tokens = model.objects.select_related("user")
        if connection.vendor == "postgresql":
            tokens = tokens.annotate(user_permissions_dotted=_permissions_subquery())
        try:
            token = tokens.get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        perms = getattr(token, "user_permissions_dotted", None)
        if perms is not None and not user.is_superuser:
            user._perm_cache = set(perms)
        return user, token
