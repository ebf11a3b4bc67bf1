from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.labeling_home, name="home"),
    path("projects/<slug:slug>/label/", views.labeling_compare, name="labeling-compare"),
    path("projects/<slug:slug>/label/submit/", views.labeling_submit, name="labeling-submit"),
    path("projects/<slug:slug>/instructions/ack/", views.labeling_instructions_ack, name="labeling-instructions-ack"),
]

# Researcher dashboards (labeling/views_dashboard.py)
from labeling import views_dashboard  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/dashboard/", views_dashboard.dashboard_project, name="dashboard-project"),
    path("projects/<slug:slug>/dashboard/labelers/", views_dashboard.dashboard_labelers, name="dashboard-labelers"),
    path("projects/<slug:slug>/dashboard/labelers/<int:user_id>/", views_dashboard.dashboard_labeler,
         name="dashboard-labeler"),
]
