"""Roles are Django groups holding permissions; code checks permissions, never group names.

Who is a researcher is decided here and nowhere else: `is_researcher` for one user, `researchers`
for the set (a user holding `labeling.view_research` through the researcher or admin group, their
own permissions, or as a superuser; active users only, as Django's permission checks). Pages,
endpoints, serving (researchers get the calibration slice first), the dashboards' and the training
tripwires' "researchers' answers" all ask these two functions.

| role       | may                                                                 |
| ---------- | ------------------------------------------------------------------- |
| contractor | label comparisons                                                   |
| researcher | label (the calibration slice), see dashboards, manage projects, import/export, start rounds |
| admin      | all of the above, resume/abort runs, manage people                  |
"""
from django.contrib.auth import get_user_model
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


# with_perm needs one backend named; this one reads groups, own permissions and superusers.
_PERMISSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def is_researcher(user) -> bool:
    """The one definition of a researcher, for one user (anonymous and inactive users are not)."""
    return bool(user is not None and user.is_authenticated and user.has_perm(PERM_RESEARCH))


def researchers():
    """Every researcher, as a queryset of users (`is_researcher` for a set; usable as a subquery)."""
    return get_user_model().objects.with_perm(PERM_RESEARCH, backend=_PERMISSION_BACKEND)


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
