"""Researcher dashboards: project overview, labeler table, one labeler's labels; each table also as CSV.

Researchers only: anonymous users go to the login page, everyone else without
`labeling.view_research` gets 403 (labeling/roles.py). `?format=csv` (with `table=` on the
overview, which has several) downloads a table.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labeling import metrics
from labeling.charts import bar_chart, rate_chart
from labeling.csv_export import csv_response
from labeling.selectors import project_get_for_researcher
from labeling.selectors.quality import (
    ALPHA,
    DETECTORS,
    READING_CHARS_PER_SECOND,
    SORT_KEYS,
    TESTS,
    TOO_FAST_ALLOWED_SHARE,
    Agreement,
    LabelerQuality,
    labeler_detail,
    labelers_quality,
    project_quality,
)
from labeling.selectors.quality.answer_parts import (
    project_answer_parts_agreement,
)

PAGE_SIZE = 100

# Labeler table columns: sort key, heading. Headers are links (keyboard-reachable), sorted server-side.
COLUMNS = [
    ("username", "Labeler"), ("labels", "Labels"), ("per_hour", "Labels/h"), ("median", "Median s"),
    ("p10", "p10 s"), ("skip", "Skip"), ("flag", "Flag"), ("unsure", "Unsure"), ("kway", "K-way agreement"),
    ("pairwise", "Pairwise agreement"), ("position", "Position bias"), ("length", "Length pref."),
    ("copy", "Copy pref."), ("too_fast", "Too fast"), ("population", "Population"),
]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _agreement_cells(a: Agreement) -> list:
    return [a.same + a.different, _pct(a.kway.value), _pct(a.kway.low), _pct(a.kway.high),
            a.pairwise.n, _pct(a.pairwise.value), _pct(a.pairwise.low), _pct(a.pairwise.high)]


AGREEMENT_HEADER = ["n_labels", "kway", "kway_low", "kway_high", "n_pairs", "pairwise", "pairwise_low", "pairwise_high"]


def _overview_csv(slug: str, table: str, quality) -> HttpResponse | None:
    if table == "days":
        return csv_response(f"{slug}-labels-per-day.csv", ["day", "labels"],
                            [[d.isoformat(), n] for d, n in quality.labels_per_day])
    if table == "weekly":
        return csv_response(f"{slug}-agreement-weekly.csv", ["week_start", *AGREEMENT_HEADER],
                            [[w.isoformat(), *_agreement_cells(a)] for w, a in quality.weekly])
    if table == "instructions":
        return csv_response(f"{slug}-agreement-by-instructions.csv", ["instructions_version", *AGREEMENT_HEADER],
                            [[v, *_agreement_cells(a)] for v, a in quality.by_instructions])
    if table == "summary":
        inter = quality.labeler_labeler
        rows = [
            ["labeler_researcher", *_agreement_cells(quality.labeler_researcher)],
            ["researcher_researcher", *_agreement_cells(quality.researcher_researcher)],
            ["majority_of_labelers_vs_researchers", *_agreement_cells(quality.majority_vs_researchers)],
            ["chance", "", _pct(quality.chance_kway), "", "", "", _pct(quality.chance_pairwise), "", ""],
        ]
        rows.append(["labeler_labeler_percent", inter.ratings, _pct(inter.percent)])
        rows.append(["labeler_labeler_fleiss_kappa", inter.ratings, _pct(inter.fleiss_kappa)])
        rows.append(["labeler_labeler_krippendorff_alpha", inter.ratings, _pct(inter.krippendorff_alpha)])
        return csv_response(f"{slug}-agreement-summary.csv", ["measure", *AGREEMENT_HEADER], rows)
    return None


@require_GET
@login_required
def dashboard_project(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    quality = project_quality(project)
    if request.GET.get("format") == "csv":
        response = _overview_csv(project.slug, request.GET.get("table", "summary"), quality)
        return response or HttpResponseBadRequest("Unknown table: use days, weekly, instructions or summary.")
    weekly = [(w.isoformat(), a.kway.value, a.kway.low, a.kway.high) for w, a in quality.weekly]
    weekly_pairs = [(w.isoformat(), a.pairwise.value, a.pairwise.low, a.pairwise.high) for w, a in quality.weekly]
    progress = quality.progress
    return render(request, "labeling/dashboard.html", {
        "project": project,
        "q": quality,
        "parts": project_answer_parts_agreement(project),
        "progress_pct": round(100 * progress["labeled"] / progress["wanted"]) if progress["wanted"] else 0,
        "charts": [
            bar_chart("Labels per day", [(d.isoformat(), n) for d, n in quality.labels_per_day]),
            rate_chart("K-way agreement with researchers, by week", weekly, quality.chance_kway),
            rate_chart("Pairwise agreement with researchers, by week", weekly_pairs, quality.chance_pairwise),
        ],
    })


def _labeler_cells(q: LabelerQuality) -> list:
    cells = [q.username, "researcher" if q.is_researcher else "labeler", q.labels, q.answers,
             None if q.labels_per_hour is None else round(q.labels_per_hour, 1), q.median_s, q.p10_s,
             _pct(q.skip_rate.value), _pct(q.flag_rate.value), _pct(q.unsure_rate.value), *_agreement_cells(q.agreement)]
    for name in TESTS:  # the four detectors, then the population test
        test: metrics.TestResult = getattr(q, name)
        cells += [test.n, None if test.statistic is None else round(test.statistic, 4), test.p_value, test.flagged(ALPHA)]
    return cells


LABELER_HEADER = ["labeler", "role", "labels", "answers", "labels_per_hour", "median_s", "p10_s", "skip_rate",
                  "flag_rate", "unsure_rate", *AGREEMENT_HEADER,
                  *[f"{name}_{part}" for name in TESTS for part in ("n", "statistic", "p_value", "flagged")]]


@require_GET
@login_required
def dashboard_labelers(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    sort = request.GET.get("sort", "username")
    if sort.lstrip("-") not in SORT_KEYS:
        return HttpResponseBadRequest(f"Unknown sort: use one of {', '.join(SORT_KEYS)} (prefix - to reverse).")
    rows = labelers_quality(project, sort=sort)
    if request.GET.get("format") == "csv":
        return csv_response(f"{project.slug}-labelers.csv", LABELER_HEADER, [_labeler_cells(q) for q in rows])
    columns = [
        {"key": key, "title": title, "sort": f"-{key}" if sort == key else key,
         "aria": "ascending" if sort == key else "descending" if sort == f"-{key}" else None}
        for key, title in COLUMNS
    ]
    return render(request, "labeling/dashboard_labelers.html", {
        "project": project, "rows": rows, "columns": columns, "sort": sort, "alpha": ALPHA,
        "chance_kway": 1 / project.k, "detectors": DETECTORS,
        "family_alpha": ALPHA / len(rows) if rows else None,  # Bonferroni over the table's labelers
    })


@require_GET
@login_required
def dashboard_labeler(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    if request.GET.get("format") == "csv":
        detail = labeler_detail(project, labeler_id=user_id, offset=0, limit=None)
        rows = [
            [label.id, label.created_at.isoformat(), label.context[:500],
             *[sample.text for sample in label.samples], label.chosen, label.chosen_letter, label.researchers,
             label.agrees, label.duration_s, label.unsure, label.skipped, " ".join(label.markers)]
            for label in detail.labels
        ]
        letters = [f"shown_{chr(65 + i)}" for i in range(project.k)]
        return csv_response(f"{project.slug}-labeler-{user_id}.csv",
                            ["label", "created_at", "context", *letters, "chosen_index", "chosen_shown_as",
                             "researchers_index", "agrees", "seconds", "unsure", "skipped", "detectors"], rows)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return HttpResponseBadRequest("page must be a whole number.")
    detail = labeler_detail(project, labeler_id=user_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-detail.total // PAGE_SIZE))
    return render(request, "labeling/dashboard_labeler.html", {
        "project": project, "detail": detail, "q": detail.quality, "alpha": ALPHA, "page": page, "pages": pages,
        "previous_page": page - 1 if page > 1 else None, "next_page": page + 1 if page < pages else None,
        "reading_speed": READING_CHARS_PER_SECOND, "allowed_share": TOO_FAST_ALLOWED_SHARE,
        "chance_kway": 1 / project.k,
        "detectors": [
            ("position bias", detail.quality.position, "χ² of chosen screen positions against uniform"),
            ("length preference", detail.quality.length, "picks a longest sample more than chance (ties: chance t/K)"),
            ("copy preference", detail.quality.copy, "picks the sample copying most of the context more than chance"),
            ("too fast", detail.quality.too_fast,
             f"share of answers faster than {READING_CHARS_PER_SECOND:.0f} chars/s of context and samples, "
             f"against {TOO_FAST_ALLOWED_SHARE:.0%} allowed"),
            ("population", detail.quality.population,
             "agrees with the majority of the labels on the same comparisons less often than those labels do "
             "(statistic: their agreement rate minus the population's; exact test)"),
        ],
    })
