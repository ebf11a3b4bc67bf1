from django.urls import path

from training import views

urlpatterns = [
    path("runs/<int:run_id>/", views.training_run_detail, name="training-run-detail"),
    path("runs/<int:run_id>/andon/", views.training_andon_pull, name="training-andon-pull"),
    path("runs/<int:run_id>/<str:action>/", views.training_run_action, name="training-run-action"),
    path("projects/<slug:slug>/runs/", views.training_project_runs, name="training-project-runs"),
    path("projects/<slug:slug>/rounds/start/", views.training_round_start, name="training-round-start"),
    path("projects/<slug:slug>/demo-autolabel/", views.training_demo_autolabel, name="training-demo-autolabel"),
    path("checkpoints/<int:checkpoint_id>/download/", views.training_checkpoint_download, name="training-checkpoint-download"),
    path("projects/<slug:slug>/runs/win-rates.csv", views.training_win_rates_csv, name="training-win-rates-csv"),
    path("runs/<int:run_id>/plots/<slug:name>.png", views.training_run_plot, name="training-run-plot"),
]
