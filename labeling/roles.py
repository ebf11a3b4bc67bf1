"""Roles are Django groups holding permissions; code checks permissions, never group names.

| role       | may                                                                 |
| ---------- | ------------------------------------------------------------------- |
| contractor | label comparisons                                                   |
| researcher | label (the calibration slice), see dashboards, manage projects, import/export, start rounds |
| admin      | all of the above, resume/abort runs, manage people                  |
"""
from django.contrib.auth.models import Group, Permission

CONTRACTOR, RESEARCHER, ADMIN = "contractor", "researcher", "admin"

PERM_LABEL = "labeling.label_comparisons"
PERM_RESEARCH = "labeling.view_research"
PERM_MANAGE = "labeling.manage_projects"

_ROLE_PERMS: dict[str, list[str]] = {
    CONTRACTOR: [PERM_LABEL],
    RESEARCHER: [PERM_LABEL, PERM_RESEARCH, PERM_MANAGE, "training.start_runs"],
    ADMIN: [PERM_LABEL, PERM_RESEARCH, PERM_MANAGE, "labeling.administer", "training.start_runs", "training.manage_runs"],
}


def roles_ensure() -> None:
    """Create the role groups with their permissions (idempotent; runs after every migrate)."""
    for role, perms in _ROLE_PERMS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.add(*wanted)


def user_role(user) -> str | None:
    """The strongest role a user holds, for display."""
    if not user.is_authenticated:
        return None
    if user.is_superuser or user.has_perm("labeling.administer"):
        return ADMIN
    if user.has_perm(PERM_RESEARCH):
        return RESEARCHER
    if user.has_perm(PERM_LABEL):
        return CONTRACTOR
    return None


def user_set_role(user, role: str) -> None:
    """Put a user in exactly one role group."""
    user.groups.remove(*Group.objects.filter(name__in=_ROLE_PERMS))
    user.groups.add(Group.objects.get(name=role))
