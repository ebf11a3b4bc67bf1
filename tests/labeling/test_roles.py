"""The one definition of a researcher (labeling/roles.py): one user and the set agree, whatever the route
to the permission (role group, own permission, superuser), and inactive users are not researchers."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission

from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER, is_researcher, researchers
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_is_researcher_and_researchers_agree():
    users = {
        "contractor": UserFactory(role=CONTRACTOR),
        "researcher": UserFactory(role=RESEARCHER),
        "admin": UserFactory(role=ADMIN),
        "superuser": UserFactory(role=None, is_superuser=True),
        "own_permission": UserFactory(role=CONTRACTOR),
        "inactive_researcher": UserFactory(role=RESEARCHER, is_active=False),
    }
    users["own_permission"].user_permissions.add(Permission.objects.get(codename="view_research"))
    expected = {"researcher", "admin", "superuser", "own_permission"}

    fresh = {name: get_user_model().objects.get(pk=user.pk) for name, user in users.items()}  # no cached perms
    assert {name for name, user in fresh.items() if is_researcher(user)} == expected
    assert set(researchers().values_list("username", flat=True)) == {users[name].username for name in expected}
    assert not is_researcher(AnonymousUser()) and not is_researcher(None)
