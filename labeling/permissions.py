"""DRF permission classes mapping roles (labeling/roles.py) to endpoints."""
from rest_framework.permissions import BasePermission

from labeling.roles import PERM_LABEL, PERM_MANAGE, is_researcher


class CanLabel(BasePermission):
    message = "Only labelers may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(PERM_LABEL))


class IsResearcher(BasePermission):
    message = "Only researchers may do this."

    def has_permission(self, request, view) -> bool:
        return bool(is_researcher(request.user))


class CanManageProjects(BasePermission):
    message = "Only researchers and admins may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(PERM_MANAGE))
