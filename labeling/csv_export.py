"""CSV downloads of the dashboard tables, safe to open in a spreadsheet.

Model and user text is untrusted: a cell that starts with = + - @ (or a tab / carriage return,
which some spreadsheets skip before reading a formula) gets a leading apostrophe, the OWASP
"CSV injection" advice, so no spreadsheet evaluates it. Numbers are written as numbers.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from django.http import HttpResponse

_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
_FILENAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def csv_cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(_DANGEROUS_START) else text


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> HttpResponse:
    """A text/csv attachment named `filename` (sanitised) with neutralised cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    safe = _FILENAME_SAFE.sub("-", filename).strip("-") or "export.csv"
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response
