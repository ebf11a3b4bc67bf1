"""CSV downloads that a spreadsheet cannot turn into formulas (CSV injection, OWASP).

Labelers and models write the text that ends up in these cells, so any text cell starting with
= + - @ (or a tab or carriage return, which some spreadsheets skip before reading a formula) gets
a leading apostrophe. Numbers and booleans are written as they are.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(*, filename: str, header: list[str], rows: Iterable[list]) -> HttpResponse:
    """An attachment `text/csv` response of `header` then `rows`, every cell neutralised."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return response
