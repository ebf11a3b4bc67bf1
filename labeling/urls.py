from django.urls import path

from labeling.views import account, comparisons, dashboard, exports, imports, instructions, projects, serving
from labeling.views import qualification

urlpatterns = [
    path("", serving.labeling_home, name="home"),
    path("projects/<slug:slug>/label/", serving.labeling_compare, name="labeling-compare"),
    path("projects/<slug:slug>/label/submit/", serving.labeling_submit, name="labeling-submit"),
    path("projects/<slug:slug>/label/undo/", serving.labeling_undo, name="labeling-undo"),
    path("projects/<slug:slug>/instructions/ack/", instructions.labeling_instructions_ack,
         name="labeling-instructions-ack"),
]

# Researchers: instructions versions, editor and diff; comparison detail and its label CSV.
urlpatterns += [
    path("projects/<slug:slug>/instructions/", instructions.labeling_instructions_list,
         name="labeling-instructions-list"),
    path("projects/<slug:slug>/instructions/edit/", instructions.labeling_instructions_edit,
         name="labeling-instructions-edit"),
    path("projects/<slug:slug>/instructions/preview/", instructions.labeling_instructions_preview,
         name="labeling-instructions-preview"),
    path("projects/<slug:slug>/instructions/diff/", instructions.labeling_instructions_diff,
         name="labeling-instructions-diff"),
    path("projects/<slug:slug>/comparisons/<int:comparison_id>/", comparisons.labeling_comparison_detail,
         name="labeling-comparison-detail"),
    path("projects/<slug:slug>/comparisons/<int:comparison_id>/labels.csv",
         comparisons.labeling_comparison_labels_csv, name="labeling-comparison-labels-csv"),
]

# Researcher dashboards: agreement, labeler quality, drill-down (labeling/views/dashboard.py).
urlpatterns += [
    path("projects/<slug:slug>/dashboard/", dashboard.dashboard_project, name="dashboard-project"),
    path("projects/<slug:slug>/dashboard/labelers/", dashboard.dashboard_labelers, name="dashboard-labelers"),
    path("projects/<slug:slug>/dashboard/labelers/<int:user_id>/", dashboard.dashboard_labeler,
         name="dashboard-labeler"),
]

# The researcher's set-up pages (issue 17): each block belongs to its view module.
urlpatterns += [
    # views/projects.py: new project
    # Every project page has a segment after its slug, so none captures "projects/new/"; a
    # "projects/<slug:slug>/" page must come after this line. project_create refuses the slug "new".
    path("projects/new/", projects.labeling_project_new, name="labeling-project-new"),
]
urlpatterns += [
    # views/imports.py: import page, dry run, progress
    path("projects/<slug:slug>/import/", imports.labeling_import, name="labeling-import"),
    path("projects/<slug:slug>/import/<int:import_id>/", imports.labeling_import_detail,
         name="labeling-import-detail"),
    path("projects/<slug:slug>/import/<int:import_id>/status/", imports.labeling_import_status,
         name="labeling-import-status"),
]
urlpatterns += [
    # views/exports.py: export page and download
    path("projects/<slug:slug>/export/", exports.labeling_export, name="labeling-export"),
    path("projects/<slug:slug>/export/download/", exports.labeling_export_download, name="labeling-export-download"),
]
urlpatterns += [
    # views/account.py: account page, API token create/revoke
    path("account/", account.labeling_account, name="labeling-account"),
    path("account/token/create/", account.labeling_account_token_create, name="labeling-account-token-create"),
    path("account/token/revoke/", account.labeling_account_token_revoke, name="labeling-account-token-revoke"),
]
urlpatterns += [
    # views/qualification.py: labelers who earn trust (qualification set, gold, standings)
    path("projects/<slug:slug>/labelers/trust/", qualification.labeling_qualification, name="labeling-qualification"),
    path("projects/<slug:slug>/labelers/trust/settings/", qualification.labeling_qualification_settings,
         name="labeling-qualification-settings"),
    path("projects/<slug:slug>/labelers/trust/items/", qualification.labeling_qualification_item_add,
         name="labeling-qualification-item-add"),
    path("projects/<slug:slug>/labelers/trust/gold-share/", qualification.labeling_qualification_gold_share,
         name="labeling-qualification-gold-share"),
    path("projects/<slug:slug>/labelers/trust/standing/", qualification.labeling_qualification_standing,
         name="labeling-qualification-standing"),
]
