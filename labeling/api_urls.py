"""REST API routes (labeling/api.py)."""
from django.urls import path

from labeling import api

urlpatterns = [
    path("assignments/next/<slug:project_slug>/", api.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path("assignments/<int:assignment_id>/label/", api.LabelCreateApi.as_view(), name="api-label-create"),
]
