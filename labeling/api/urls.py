"""REST API routes (the modules of labeling/api/). Token (`Authorization: Token …`, see `create_api_token`)
or session auth."""
from django.urls import path

from labeling.api import dashboard, data, instructions, projects, serving

urlpatterns = [
    path("assignments/next/<slug:project_slug>/", serving.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path("assignments/<int:assignment_id>/label/", serving.LabelCreateApi.as_view(), name="api-label-create"),
    path("projects/", projects.ProjectListApi.as_view(), name="api-project-list"),
    path("projects/create/", projects.ProjectCreateApi.as_view(), name="api-project-create"),
    path("projects/<slug:project_slug>/", projects.ProjectDetailApi.as_view(), name="api-project-detail"),
    path("projects/<slug:project_slug>/progress/", projects.ProjectProgressApi.as_view(), name="api-project-progress"),
    path("projects/<slug:project_slug>/queries/import/", data.QueriesImportApi.as_view(), name="api-queries-import"),
    path("projects/<slug:project_slug>/comparisons/import/", data.ComparisonsImportApi.as_view(),
         name="api-comparisons-import"),
    path("projects/<slug:project_slug>/labels/export/", data.LabelsExportApi.as_view(), name="api-labels-export"),
    path("projects/<slug:project_slug>/instructions/", instructions.InstructionsCurrentApi.as_view(),
         name="api-instructions"),
    path("projects/<slug:project_slug>/instructions/publish/", instructions.InstructionsPublishApi.as_view(),
         name="api-instructions-publish"),
    path("projects/<slug:project_slug>/instructions/ack/", instructions.InstructionsAckApi.as_view(),
         name="api-instructions-ack"),
    path("projects/<slug:project_slug>/instructions/versions/",
         instructions.InstructionsVersionsApi.as_view(), name="api-instructions-versions"),
    # Researcher dashboards
    path("projects/<slug:project_slug>/dashboard/labelers/", dashboard.LabelerTableApi.as_view(),
         name="api-dashboard-labelers"),
]
