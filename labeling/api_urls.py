"""REST API routes (labeling/api.py). Token (`Authorization: Token …`, see `create_api_token`) or session auth."""
from django.urls import path

from labeling import api

urlpatterns = [
    path("assignments/next/<slug:project_slug>/", api.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path("assignments/<int:assignment_id>/label/", api.LabelCreateApi.as_view(), name="api-label-create"),
    path("projects/", api.ProjectListApi.as_view(), name="api-project-list"),
    path("projects/create/", api.ProjectCreateApi.as_view(), name="api-project-create"),
    path("projects/<slug:project_slug>/", api.ProjectDetailApi.as_view(), name="api-project-detail"),
    path("projects/<slug:project_slug>/progress/", api.ProjectProgressApi.as_view(), name="api-project-progress"),
    path("projects/<slug:project_slug>/queries/import/", api.QueriesImportApi.as_view(), name="api-queries-import"),
    path("projects/<slug:project_slug>/comparisons/import/", api.ComparisonsImportApi.as_view(),
         name="api-comparisons-import"),
    path("projects/<slug:project_slug>/labels/export/", api.LabelsExportApi.as_view(), name="api-labels-export"),
    path("projects/<slug:project_slug>/instructions/", api.InstructionsCurrentApi.as_view(), name="api-instructions"),
    path("projects/<slug:project_slug>/instructions/publish/", api.InstructionsPublishApi.as_view(),
         name="api-instructions-publish"),
    path("projects/<slug:project_slug>/instructions/ack/", api.InstructionsAckApi.as_view(), name="api-instructions-ack"),
    path("projects/<slug:project_slug>/instructions/versions/",
         api.InstructionsVersionsApi.as_view(), name="api-instructions-versions"),
]

# Researcher dashboards (labeling/api_dashboard.py)
from labeling import api_dashboard  # noqa: E402

urlpatterns += [
    path("projects/<slug:project_slug>/dashboard/labelers/", api_dashboard.LabelerTableApi.as_view(),
         name="api-dashboard-labelers"),
]
