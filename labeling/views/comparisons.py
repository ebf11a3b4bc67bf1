"""Researchers' comparison page: context, the K samples in canonical order, every label; and its CSV."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labeling.csv_export import csv_response
from labeling.selectors import project_get_for_researcher
from labeling.selectors.comparisons import (
    LABEL_CSV_HEADER,
    comparison_detail,
    comparison_get_for_researcher,
    comparison_label_table,
)


@require_GET
@login_required
def labeling_comparison_detail(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    comparison = comparison_get_for_researcher(project=project, comparison_id=comparison_id)
    return render(request, "labeling/comparison_detail.html",
                  {"project": project, "detail": comparison_detail(comparison)})


@require_GET
@login_required
def labeling_comparison_labels_csv(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    comparison = comparison_get_for_researcher(project=project, comparison_id=comparison_id)
    rows = comparison_label_table(comparison_detail(comparison))
    return csv_response(filename=f"{project.slug}-comparison-{comparison.id}-labels.csv", header=LABEL_CSV_HEADER,
                        rows=rows)
