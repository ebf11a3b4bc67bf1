"""Reads of the training app, one module a feature (the same names as services/ and views/): runs (a
run's page: metrics, checkpoints, samples, report), rounds (policy-versus-base win rates), andon (who
was shown a run's samples), reward_fit (the labels and samples a reward fit trains and checks on),
leaderboard (policies ranked by Bradley–Terry, length-controlled win rates, sample-to-label latency).
Import from here; the submodules are an implementation detail."""
from training.selectors.andon import (
    andon_excluded_comparison_ids,
    comparison_get_for_puller,
    comparison_policy,
    comparison_served_to,
    run_comparisons,
    run_quarantine,
    run_served_to,
    run_stopping_pulls,
)
from training.selectors.leaderboard import (
    LEADERBOARD_CSV_HEADER,
    Leaderboard,
    LeaderboardRow,
    RoundLatency,
    leaderboard_cache_clear,
    leaderboard_csv_rows,
    leaderboard_json,
    policy_kind,
    project_leaderboard,
    round_label_latencies,
)
from training.selectors.reward_fit import (
    RewardFitData,
    base_policy_sample_pairs,
    calibration_records,
    comparison_records_for_snapshot,
    reward_fit_data,
)
from training.selectors.rounds import (
    WIN_RATE_CSV_HEADER,
    RoundWinRate,
    round_win_rate_table,
    round_win_rates,
    sample_side,
    win_rate_csv_rows,
)
from training.selectors.runs import (
    CHART_KEYS,
    REPORT_PLOTS,
    run_audit_log,
    run_checkpoints,
    run_get_for_user,
    run_latest_metrics,
    run_metric_series,
    run_plot_path,
    run_report,
    run_reward_data,
    run_samples_side_by_side,
    runs_for_project,
    user_sees_all_runs,
)

__all__ = [
    "CHART_KEYS", "REPORT_PLOTS", "WIN_RATE_CSV_HEADER", "RewardFitData", "RoundWinRate",
    "andon_excluded_comparison_ids", "base_policy_sample_pairs", "calibration_records", "comparison_policy",
    "comparison_get_for_puller", "comparison_records_for_snapshot", "comparison_served_to", "reward_fit_data",
    "round_win_rate_table", "round_win_rates", "run_audit_log", "run_checkpoints", "run_comparisons", "run_get_for_user", "run_latest_metrics",
    "run_metric_series", "run_plot_path", "run_quarantine", "run_report", "run_reward_data", "run_samples_side_by_side",
    "run_served_to", "run_stopping_pulls", "runs_for_project", "sample_side", "user_sees_all_runs", "win_rate_csv_rows",
    # leaderboard (issue 19)
    "LEADERBOARD_CSV_HEADER", "Leaderboard", "LeaderboardRow", "RoundLatency", "leaderboard_cache_clear",
    "leaderboard_csv_rows", "leaderboard_json", "policy_kind", "project_leaderboard", "round_label_latencies",
]
