"""Helpers of the REST API tests."""

from django.urls import reverse


def url(name, project=None, **kwargs):
    if project is not None:
        kwargs["project_slug"] = project.slug
    return reverse(name, kwargs=kwargs or None)
