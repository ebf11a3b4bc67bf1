"""project_create's slug checks, and project_create_with_instructions: the project and its
instructions v1 together or not at all."""
import pytest

from labeling.errors import InvalidInput
from labeling.models import Instructions, Project
from labeling.services import project_create, project_create_with_instructions

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("slug", "message"), [
    ("new", "name of a page"), ("create", "name of a page"), ("two words", "letters, digits"),
    ("ünï", "letters, digits"), ("", "letters, digits"), ("x" * 81, "limited to 80"),
])
def test_project_create_refuses_slugs_no_page_could_reach(slug, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        project_create(name="P", slug=slug)
    assert caught.value.field == "slug"
    assert not Project.objects.exists()


def test_project_create_refuses_a_blank_name():
    with pytest.raises(InvalidInput) as caught:
        project_create(name="  ", slug="ok")
    assert caught.value.field == "name"


def test_with_instructions_publishes_version_1_by_the_creator(researcher):
    project, first = project_create_with_instructions(name="P", slug="p", k=3, instructions="Be kind.\r\n",
                                                      created_by=researcher)
    assert (project.k, project.created_by) == (3, researcher)
    assert (first.project, first.version, first.body, first.created_by) == (project, 1, "Be kind.\n", researcher)


def test_with_empty_instructions_nothing_is_created():
    with pytest.raises(InvalidInput, match="cannot be empty") as caught:
        project_create_with_instructions(name="P", slug="p", instructions=" \n ")
    assert caught.value.field == "instructions"
    assert not Project.objects.exists() and not Instructions.objects.exists()
