from django.urls import path

from labeling import views, views_comparisons, views_dashboard, views_instructions

urlpatterns = [
    path("", views.labeling_home, name="home"),
    path("projects/<slug:slug>/label/", views.labeling_compare, name="labeling-compare"),
    path("projects/<slug:slug>/label/submit/", views.labeling_submit, name="labeling-submit"),
    path("projects/<slug:slug>/instructions/ack/", views.labeling_instructions_ack, name="labeling-instructions-ack"),
]

# Researchers: instructions versions, editor and diff; comparison detail and its label CSV.
urlpatterns += [
    path("projects/<slug:slug>/instructions/", views_instructions.labeling_instructions_list,
         name="labeling-instructions-list"),
    path("projects/<slug:slug>/instructions/edit/", views_instructions.labeling_instructions_edit,
         name="labeling-instructions-edit"),
    path("projects/<slug:slug>/instructions/preview/", views_instructions.labeling_instructions_preview,
         name="labeling-instructions-preview"),
    path("projects/<slug:slug>/instructions/diff/", views_instructions.labeling_instructions_diff,
         name="labeling-instructions-diff"),
    path("projects/<slug:slug>/comparisons/<int:comparison_id>/", views_comparisons.labeling_comparison_detail,
         name="labeling-comparison-detail"),
    path("projects/<slug:slug>/comparisons/<int:comparison_id>/labels.csv",
         views_comparisons.labeling_comparison_labels_csv, name="labeling-comparison-labels-csv"),
]

# Researcher dashboards: agreement, labeler quality, drill-down (labeling/views_dashboard.py).
urlpatterns += [
    path("projects/<slug:slug>/dashboard/", views_dashboard.dashboard_project, name="dashboard-project"),
    path("projects/<slug:slug>/dashboard/labelers/", views_dashboard.dashboard_labelers, name="dashboard-labelers"),
    path("projects/<slug:slug>/dashboard/labelers/<int:user_id>/", views_dashboard.dashboard_labeler,
         name="dashboard-labeler"),
]
