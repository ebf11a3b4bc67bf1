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
from django.db.models import Q


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
