from django.urls import path

from training.views import andon, rounds, runs, settings

urlpatterns = [
    path("runs/<int:run_id>/", runs.training_run_detail, name="training-run-detail"),
    path("runs/<int:run_id>/andon/", andon.training_andon_pull, name="training-andon-pull"),
    path("comparisons/<int:comparison_id>/andon/", andon.training_andon_pull_comparison,
         name="training-andon-pull-comparison"),
    path("andon/<int:pull_id>/resolve/", andon.training_andon_resolve, name="training-andon-resolve"),
    path("runs/<int:run_id>/<str:action>/", runs.training_run_action, name="training-run-action"),
    path("projects/<slug:slug>/runs/", rounds.training_project_runs, name="training-project-runs"),
    path("projects/<slug:slug>/rounds/start/", rounds.training_round_start, name="training-round-start"),
    path("projects/<slug:slug>/demo-autolabel/", rounds.training_demo_autolabel, name="training-demo-autolabel"),
    path("checkpoints/<int:checkpoint_id>/download/", runs.training_checkpoint_download,
         name="training-checkpoint-download"),
    path("projects/<slug:slug>/runs/win-rates.csv", rounds.training_win_rates_csv, name="training-win-rates-csv"),
    path("runs/<int:run_id>/plots/<slug:name>.png", runs.training_run_plot, name="training-run-plot"),
]

# Training settings page, JSON view, run config and diff (views/settings.py; issue 17).
urlpatterns += [
    path("projects/<slug:slug>/settings/", settings.training_settings, name="training-settings"),
    path("projects/<slug:slug>/settings/json/", settings.training_settings_json, name="training-settings-json"),
    path("runs/<int:run_id>/diff/pick/", runs.training_run_diff_pick, name="training-run-diff-pick"),
    path("runs/<int:run_id>/diff/<int:other_id>/", runs.training_run_diff, name="training-run-diff"),
]

# Leaderboard of policies: CSV and JSON (views/rounds.py; issue 19).
urlpatterns += [
    path("projects/<slug:slug>/runs/leaderboard.csv", rounds.training_leaderboard_csv, name="training-leaderboard-csv"),
    path("projects/<slug:slug>/runs/leaderboard.json", rounds.training_leaderboard_json,
         name="training-leaderboard-json"),
]

# Over-optimisation sweep: the runs page's section, starting a sweep, its chart (views/sweep.py; issue 19).
from training.views import sweep  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/runs/sweep/", sweep.training_sweep_section, name="training-sweep"),
    path("projects/<slug:slug>/runs/sweep/start/", sweep.training_sweep_start, name="training-sweep-start"),
    path("projects/<slug:slug>/runs/sweep/<int:number>.png", sweep.training_sweep_chart, name="training-sweep-chart"),
]
