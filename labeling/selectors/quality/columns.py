"""What the dashboards read per label, and what each process keeps between requests.

A project's labels are read as columns (numpy arrays, one entry per label), joined with what
the shortcut detectors need of each comparison's texts (`Comparison.length_top`, `copy_top`,
`text_chars`, kept at write time) and each label's `display_position` (no join of assignments).
On PostgreSQL the rows come through one `COPY … TO STDOUT (FORMAT binary)` of fixed-width
integers that numpy reads in place: 110k labels in ~130 ms, against ~400 ms as the ORM's row
tuples. `DASHBOARD_PG_COPY=0`, and any other database, read through the ORM; the tests run both
on PostgreSQL and hold them to the same columns.

Each process keeps the columns it read (`_COLUMNS_CACHE`), and every process shares a snapshot
of them through the `dashboard` cache (settings.CACHES: files under var/ by default, Redis where
DASHBOARD_CACHE_URL says so), so a worker that has just started reads the snapshot instead of
the whole table. Both are checked against the database before use (`_project_columns`).
"""
from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.db.models import Count, F, Q, Sum, TextField, Value
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from labeling.models import Comparison, Label, Project, SampleFlag
from labeling.services.comparisons import comparisons_text_figures_fill
from labeling.services.labels import labels_display_position_fill

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()


def dashboard_cache_clear(*, shared: bool = True) -> None:
    """Forget the label columns this process keeps between requests and, unless `shared` is False
    (as in a process that has just started), the shared snapshots: the whole `dashboard` cache
    (give it a store of its own)."""
    with _LOCK:
        _COLUMNS_CACHE.clear()
        _SNAPSHOT_ROWS.clear()
    if shared:
        try:
            caches[SNAPSHOT_CACHE].clear()
        except Exception:
            logger.warning("dashboard snapshot: cannot clear the %r cache", SNAPSHOT_CACHE, exc_info=True)


@dataclass
class _Labels:
    """A project's labels as columns (numpy int64 or bool arrays, one entry per label)."""

    id: np.ndarray
    labeler: np.ndarray
    comparison: np.ndarray
    chosen: np.ndarray  # canonical index, −1 when skipped
    position: np.ndarray  # Label.display_position, −1 when skipped (or not known)
    unsure: np.ndarray
    skipped: np.ndarray
    duration_ms: np.ndarray
    calibration: np.ndarray
    day: np.ndarray  # date.toordinal() of created_at (the current time zone's date, as TruncDate)
    instructions: np.ndarray  # Instructions id, −1 when none
    length_top: np.ndarray  # the comparison's Comparison.length_top, −1 while not computed
    copy_top: np.ndarray  # … copy_top
    text_chars: np.ndarray  # … text_chars
    flagged: np.ndarray

    # In the order both fetches produce them; `flagged` is read apart (flags may come later).
    FETCHED = ("id", "labeler", "comparison", "chosen", "position", "unsure", "skipped", "duration_ms",
               "calibration", "day", "instructions", "length_top", "copy_top", "text_chars")
    BOOLEAN = ("unsure", "skipped", "calibration")

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> _Labels:
        """From an (n, len(FETCHED)) integer matrix, flags False."""
        columns = {name: np.ascontiguousarray(matrix[:, i], dtype=np.int64) for i, name in enumerate(cls.FETCHED)}
        for name in cls.BOOLEAN:
            columns[name] = columns[name].astype(bool)
        return cls(**columns, flagged=np.zeros(len(matrix), dtype=bool))

    def subset(self, mask: np.ndarray) -> _Labels:
        return _Labels(**{name: getattr(self, name)[mask] for name in (*self.FETCHED, "flagged")})

    def extended(self, more: _Labels) -> _Labels:
        return _Labels(**{name: np.concatenate([getattr(self, name), getattr(more, name)])
                          for name in (*self.FETCHED, "flagged")})

    def fingerprint(self) -> tuple[int, ...]:
        """What `_labels_fingerprint` reads from the database for the same rows."""
        return (len(self.id), int(self.id.sum()), int(self.comparison.sum()), int(self.labeler.sum()),
                int(self.chosen.sum()), int(self.duration_ms.sum()), int(self.unsure.sum()), int(self.skipped.sum()),
                int(self.calibration.sum()), int(self.instructions.sum()), int(self.position.sum()),
                int((self.id * self.chosen).sum()),
                int(self.length_top.sum()), int(self.copy_top.sum()), int(self.text_chars.sum()))


def _use_copy() -> bool:
    return connection.vendor == "postgresql" and settings.DASHBOARD_PG_COPY


# ---------------------------------------------------------------- PostgreSQL: one binary COPY

# Every column a non-NULL int8, so each row is the same 2 + 14 × (4 + 8) bytes: numpy reads them in place.
_COPY_SQL = f"""
SELECT l.id::int8, l.labeler_id::int8, l.comparison_id::int8, COALESCE(l.chosen_index, -1)::int8,
       COALESCE(l.display_position, -1)::int8, l.unsure::int::int8, l.skipped::int::int8, l.duration_ms::int8,
       c.is_calibration::int::int8, ((l.created_at AT TIME ZONE %(tz)s)::date - DATE '0001-01-01' + 1)::int8,
       COALESCE(l.instructions_id, -1)::int8, COALESCE(c.length_top, -1)::int8, COALESCE(c.copy_top, -1)::int8,
       COALESCE(c.text_chars, -1)::int8
FROM {Label._meta.db_table} l
JOIN {Comparison._meta.db_table} c ON c.id = l.comparison_id
WHERE c.project_id = %(project)s AND l.id > %(after)s"""
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"
_COPY_ROW = np.dtype([("fields", ">i2")] + [(f"{kind}{i}", ">i4" if kind == "size" else ">i8")
                                             for i in range(len(_Labels.FETCHED)) for kind in ("size", "value")])


def _copy_parse(data: bytes) -> np.ndarray:
    """The (n, columns) int64 matrix of a binary COPY whose every field is a non-NULL int8."""
    header_end = 19 + int.from_bytes(data[15:19], "big")  # signature, flags, extension length, extension
    if not data.startswith(_COPY_HEADER) or data[-2:] != b"\xff\xff":
        raise ValueError("not a PostgreSQL binary COPY stream")
    n_rows, rest = divmod(len(data) - header_end - 2, _COPY_ROW.itemsize)
    rows = np.frombuffer(data, dtype=_COPY_ROW, offset=header_end, count=n_rows)
    n = len(_Labels.FETCHED)
    if rest or (rows["fields"] != n).any() or any((rows[f"size{i}"] != 8).any() for i in range(n)):
        raise ValueError("unexpected field count or width in the COPY stream")
    if n_rows == 0:
        return np.zeros((0, n), dtype=np.int64)
    # The values as one strided (rows, n) big-endian view of the buffer, converted in one pass.
    values = np.ndarray((n_rows, n), dtype=">i8", buffer=data, offset=header_end + 2 + 4,
                        strides=(_COPY_ROW.itemsize, 12))
    return values.astype(np.int64)


def _label_rows_copy(project: Project, after_id: int) -> _Labels:
    buffer = io.BytesIO()
    with connection.cursor() as cursor:  # Django's debug cursor logs copy_expert like any statement
        statement = cursor.mogrify(_COPY_SQL, {"tz": timezone.get_current_timezone_name(), "project": project.id,
                                               "after": after_id}).decode()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT (FORMAT binary)", buffer)
    return _Labels.from_matrix(_copy_parse(buffer.getvalue()))


# ---------------------------------------------------------------- any database: the ORM

def _label_rows_orm(project: Project, after_id: int) -> _Labels:
    """One query: the label columns."""
    rows = Label.objects.filter(comparison__project=project, id__gt=after_id).annotate(
        day_text=Cast(TruncDate("created_at"), TextField()),  # 60 distinct strings convert faster than 100k dates
    ).values_list(
        "id", "labeler_id", "comparison_id", "chosen_index", "display_position", "unsure", "skipped", "duration_ms",
        "comparison__is_calibration", "day_text", "instructions_id", "comparison__length_top", "comparison__copy_top",
        "comparison__text_chars",
    ).order_by()  # no ORDER BY: sorting 100k rows costs more than the rest of the query
    rows = list(rows)
    day = _Labels.FETCHED.index("day")
    day_of = {text: date.fromisoformat(str(text)[:10]).toordinal() for text in {row[day] for row in rows}}
    matrix = np.array([[day_of[v] if i == day else -1 if v is None else v for i, v in enumerate(row)] for row in rows],
                      dtype=np.int64).reshape(-1, len(_Labels.FETCHED))
    return _Labels.from_matrix(matrix)


def _label_rows_fetch(project: Project, after_id: int = 0) -> _Labels:
    """The project's labels with id > after_id as columns, flags left False: one statement."""
    return _label_rows_copy(project, after_id) if _use_copy() else _label_rows_orm(project, after_id)


def _labels_fingerprint(labels, up_to_id: int) -> tuple[int, ...]:
    """Count and column sums of the labels with id ≤ up_to_id: one aggregate query, nothing transferred."""
    agg = labels.filter(id__lte=up_to_id).aggregate(
        n=Count("id"), ids=Sum("id"), comparisons=Sum("comparison_id"), labelers=Sum("labeler_id"),
        chosen=Sum(Coalesce("chosen_index", Value(-1))), duration=Sum("duration_ms"),
        unsure=Count("id", filter=Q(unsure=True)), skipped=Count("id", filter=Q(skipped=True)),
        calibration=Count("id", filter=Q(comparison__is_calibration=True)),
        instructions=Sum(Coalesce("instructions_id", Value(-1))),
        positions=Sum(Coalesce("display_position", Value(-1))),
        weighted=Sum(F("id") * Coalesce("chosen_index", Value(-1))),  # an edit that swaps two choices shows here
        length_top=Sum(Coalesce("comparison__length_top", Value(-1))),  # figures refreshed after a text edit
        copy_top=Sum(Coalesce("comparison__copy_top", Value(-1))),
        text_chars=Sum(Coalesce("comparison__text_chars", Value(-1))),
    )
    keys = ("n", "ids", "comparisons", "labelers", "chosen", "duration", "unsure", "skipped", "calibration",
            "instructions", "positions", "weighted", "length_top", "copy_top", "text_chars")
    return tuple(int(agg[key] or 0) for key in keys)


def _derived_fill(project: Project, cols: _Labels) -> _Labels:
    """Compute and store what the write paths keep (text figures, display positions) for rows written
    without it (around the services), then read the columns again: paid for once, not per request.
    A position that cannot be known (the choice is missing from its display order) stays −1."""
    positions = cols.id[(cols.chosen >= 0) & (cols.position < 0)]
    figures = np.unique(cols.comparison[cols.length_top < 0])
    written = 0
    if len(positions):
        written += labels_display_position_fill(label_ids=positions.tolist())
    if len(figures):
        written += comparisons_text_figures_fill(comparison_ids=figures.tolist())
    return _label_rows_fetch(project) if written else cols


# ---------------------------------------------------------------- snapshots shared by every process

SNAPSHOT_CACHE = "dashboard"  # the settings.CACHES alias
_SNAPSHOT_FORMAT = 1  # bump when _Labels.FETCHED or the packing changes
# A process rewrites the shared snapshot once it holds this many labels more than the snapshot
# (or this share more): writing ~3 MB on every request of a busy project would cost more than it saves.
SNAPSHOT_REWRITE_ROWS = 2_000
SNAPSHOT_REWRITE_SHARE = 0.05


def _snapshot_key(project: Project) -> str:
    db = connection.settings_dict
    return (f"labeling:columns:v{_SNAPSHOT_FORMAT}:{db.get('HOST') or ''}:{db.get('PORT') or ''}:{db['NAME']}:"
            f"{project.id}:{timezone.get_current_timezone_name()}")


def _narrow(values: np.ndarray) -> np.ndarray:
    """The smallest integer type that holds every value (the snapshot is ~30 bytes a label, not 120)."""
    if values.dtype == bool or not len(values):
        return values
    low, high = int(values.min()), int(values.max())
    # unsigned when nothing is negative; else the signed type that holds both −(high + 1) and low
    return values.astype(np.min_scalar_type(high) if low >= 0 else np.min_scalar_type(min(low, -high - 1)))


def _snapshot_pack(cols: _Labels) -> dict:
    return {"format": _SNAPSHOT_FORMAT, "fingerprint": cols.fingerprint(),
            "columns": {name: _narrow(getattr(cols, name)) for name in _Labels.FETCHED}}


def _snapshot_unpack(data) -> _Labels | None:
    """The columns of a snapshot, or None when it is not one this code wrote (another format, damaged)."""
    try:
        if data["format"] != _SNAPSHOT_FORMAT:
            return None
        columns = {name: np.asarray(data["columns"][name], dtype=bool if name in _Labels.BOOLEAN else np.int64)
                   for name in _Labels.FETCHED}
        if len({len(values) for values in columns.values()}) != 1:
            return None
        cols = _Labels(**columns, flagged=np.zeros(len(columns["id"]), dtype=bool))
        return cols if cols.fingerprint() == tuple(data["fingerprint"]) else None
    except (KeyError, TypeError, ValueError):
        return None


def _snapshot_read(project: Project) -> _Labels | None:
    try:
        data = caches[SNAPSHOT_CACHE].get(_snapshot_key(project))
    except Exception:  # a cache that is down must not take the dashboards with it
        logger.warning("dashboard snapshot: cannot read the %r cache", SNAPSHOT_CACHE, exc_info=True)
        return None
    return None if data is None else _snapshot_unpack(data)


def _snapshot_write(project: Project, cols: _Labels) -> bool:
    try:
        caches[SNAPSHOT_CACHE].set(_snapshot_key(project), _snapshot_pack(cols), timeout=None)
        return True
    except Exception:
        logger.warning("dashboard snapshot: cannot write the %r cache", SNAPSHOT_CACHE, exc_info=True)
        return False


# ---------------------------------------------------------------- what a request reads

# Labels are written once (label_submit never updates one) and a project's table is read often,
# so each process keeps the columns it fetched and, per request, checks with one aggregate that the
# rows it holds are unchanged (count and column sums) and fetches only the newer ones; anything
# else (an admin edit or delete, a comparison moved in or out of calibration, refreshed text
# figures) reloads everything. A process that holds nothing yet starts from the shared snapshot,
# checked the same way, and writes one after reading everything (or after enough newer labels).
_COLUMNS_CACHE: OrderedDict[int, _Labels] = OrderedDict()
_COLUMNS_CACHE_PROJECTS = 16
_SNAPSHOT_ROWS: dict[int, int] = {}  # project → labels in the shared snapshot, as far as this process knows


def _project_columns(project: Project) -> _Labels:
    """The project's label columns with fresh flags: 3 queries warm (check, newer rows, flags), 2 cold
    (all rows, flags), 3 cold from a snapshot; a fill of missing derived fields adds its own."""
    labels = Label.objects.filter(comparison__project=project)
    with _LOCK:
        cached = _COLUMNS_CACHE.get(project.id)
        shared_rows = _SNAPSHOT_ROWS.get(project.id)
    if cached is None:
        cached = _snapshot_read(project)
        shared_rows = None if cached is None else len(cached.id)
    if cached is not None and len(cached.id):
        newest = int(cached.id.max())
        if _labels_fingerprint(labels, newest) == cached.fingerprint():
            cols = cached.extended(_label_rows_fetch(project, newest))
        else:
            cols, shared_rows = _label_rows_fetch(project), None
    else:
        cols = _label_rows_fetch(project)
    cols = _derived_fill(project, cols)
    rewrite_after = min(SNAPSHOT_REWRITE_ROWS, SNAPSHOT_REWRITE_SHARE * len(cols.id))
    if len(cols.id) and (shared_rows is None or len(cols.id) - shared_rows >= rewrite_after):
        shared_rows = len(cols.id) if _snapshot_write(project, cols) else None
    with _LOCK:
        _COLUMNS_CACHE[project.id] = cols
        _COLUMNS_CACHE.move_to_end(project.id)
        while len(_COLUMNS_CACHE) > _COLUMNS_CACHE_PROJECTS:
            evicted, _ = _COLUMNS_CACHE.popitem(last=False)
            _SNAPSHOT_ROWS.pop(evicted, None)
        if shared_rows is None:
            _SNAPSHOT_ROWS.pop(project.id, None)
        else:
            _SNAPSHOT_ROWS[project.id] = shared_rows
    # Flags may come later than their label (admin), and are few: always read fresh. By label id range
    # (the label_id index; isin keeps this project's): joining the labels to their project costs more.
    if not len(cols.id):
        return cols
    flagged_ids = SampleFlag.objects.filter(label_id__gte=int(cols.id.min()), label_id__lte=int(cols.id.max()))
    flagged = np.fromiter(flagged_ids.values_list("label_id", flat=True).distinct(), dtype=np.int64)
    return replace(cols, flagged=np.isin(cols.id, flagged))


def dashboard_snapshots_refresh(*, active_within: timedelta = timedelta(days=7)) -> dict[int, int]:
    """Bring up to date the shared snapshot of every project that got labels within `active_within`
    (Celery beat runs this every DASHBOARD_SNAPSHOT_INTERVAL_SECONDS), so that the first page read after
    an import, an edit of old labels or an emptied cache finds a good snapshot instead of reading every
    row. A check costs a snapshot read and one aggregate per project; only a missing or stale snapshot
    costs a full read and a write.
    Returns {project id: labels read}; a project that fails is logged and skipped."""
    since = timezone.now() - active_within
    active = Label.objects.filter(created_at__gte=since).values("comparison__project_id")
    done = {}
    for project in Project.objects.filter(id__in=active).order_by("id"):
        with _LOCK:  # start from the shared snapshot, not what this process kept: it may be gone or stale
            _COLUMNS_CACHE.pop(project.id, None)
            _SNAPSHOT_ROWS.pop(project.id, None)
        try:
            done[project.id] = len(_project_columns(project).id)
        except Exception:
            logger.exception("dashboard snapshot: cannot refresh project %s", project.slug)
    return done
