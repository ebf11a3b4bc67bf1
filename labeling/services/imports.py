"""Importing queries, samples and labeled comparisons from JSON Lines files.

Every import is checked in full before anything is written: the size limit
(settings.IMPORT_MAX_BYTES) before parsing, then every line, and a bad file is refused naming each
bad line (BadLines: "line 7: missing key 'sample3'.", one per message line, the first
MAX_LINE_ERRORS_LISTED of them). The write is one transaction, so a bad line writes nothing.
The import page runs `import_dry_run` first (the same checks, nothing written: the rows as they
will be stored, every bad line, the accounts); a file of more than IMPORT_ASYNC_LINES records is
then imported by a task (`import_start` → `import_execute`) with progress on its Import.
Files are JSON Lines (one object per line; blank lines are skipped) or one JSON array of objects
(errors then name the item). Nothing else is parsed: never pickle or torch files from users.

Formats
-------
Queries (`queries_import`), one query per line::

    {"context": str, "reference"?: str, "external_id"?: str, "split"?: "train"|"valid"|"test",
     "samples"?: [{"text": str, "source"?: str, "generation_params"?: object}]}

Comparisons, 2019 layout (`comparisons_import(layout="2019")`), one question per line::

    {"query": text, "sample0": text, …, "sample{K-1}": text, "best"?: int,
     "labeler"?: str, "unsure"?: bool, "split"?: str, "external_id"?: str, "batch"?: str}

  A text is a string, or a list of token ids decoded with the `tokenizer` argument: "bytes"
  (UTF-8 byte ids 0–255) or a local Hugging Face tokenizer folder (never fetched from a hub).
  Trailing `pad_id` ids are stripped first (the 2019 files right-pad queries with 50259).
  K (the number of sampleN keys) must equal the project's K. Samples get source "imported".
  Keys that the platform does not know are ignored; the export adds some (`comparison_id`).

Comparisons, 2020 layout (`comparisons_import(layout="2020")`, K=2 projects only)::

    {"info": {"id", "post" | "article", "title"?, "subreddit"?, "site"?},
     "summaries": [{"text", "policy", "note"?}, {…}], "choice"?: 0|1, "worker"?: str,
     "batch"?: str, "split"?: "train"|"valid1"|"valid2", "extra"?: {…}}

  `info.id` becomes the query's external_id (a later batch on the same post reuses the query);
  the query text follows the 2020 TL;DR format "SUBREDDIT: r/…\\n\\nTITLE: …\\n\\nPOST: …" when a
  title or subreddit is given, else it is the post (or article). Splits map valid1 → valid and
  valid2 → test. `policy` becomes the sample's source. `extra.confidence` (the 9-point scale: 1 =
  summaries[0] definitely better … 5 = no preference … 9 = summaries[1] definitely better) becomes
  Label.confidence where it agrees with `choice` (labeling/label_types.PairwiseConfidence.from_2020);
  one on the other side (e.g. choice 0 with 8) or off the scale is dropped, the choice kept. The
  rest of `extra` is dropped.

Who imported labels belong to
-----------------------------
A line's "best"/"choice" is stored as a Label of the line's "labeler"/"worker" account, else of
the `labeler_username` argument (default "imported"). Missing accounts are created with the
contractor role and no usable password (they cannot log in): import accounts. Labels are never
attributed to the importing researcher: their own agreement and calibration statistics would be
polluted.
An import never writes under an existing person silently: a label written with duration 0 under a
real contractor trips their too-fast detector, and one under a researcher counts as a calibration
answer. An account that already exists may be written under only if
- it is an import account of this project: created by an earlier import of this project (its
  Import.accounts_created), still without a usable password, not staff, superuser or researcher; or
- the importer lists it in `labelers_existing` (the deliberate choice; the only way to write
  under a person, an admin or a researcher, e.g. researchers' answers on a calibration slice,
  `is_calibration=True`: calibration checks count researchers' labels only).
Otherwise the import is refused (ExistingAccounts, a 400 naming each account and its lines) and
nothing is written. A listed name with no account is an error; a listed name the file does not
use is not. Accounts created by imports before imports were recorded (migration 0009) are not
known as import accounts: list them whenever a file names them.
Each imported label gets a submitted Assignment with the identity display order (what it was
"shown" as is unknown), duration 0 and no instructions version; the comparison's
labels_wanted is at least its label count, and label_count/open_slots are set to match.

What an import records
----------------------
Every import (queries too) is an Import row: the file's name, size and sha256, the layout, who
ran it and how (API, command), the counts, and the accounts it created and the existing ones it
wrote under. Imported comparisons and labels point at it (`source_import`). The same content
imported into the project before is not refused: the result says `previously_imported`.
Lines with the same query, samples, external id and batch become one comparison with several
labels (one per labeler), which is how an export of several labels per comparison comes back.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from labeling.errors import ExistingAccounts, InvalidInput, LabelingError, PayloadTooLarge
from labeling.label_types import LikertAxes, PairwiseConfidence, Ranking
from labeling.models import Assignment, Comparison, ComparisonSample, Import, Label, Project, Query, Sample
from labeling.roles import CONTRACTOR, researchers, user_role, user_set_role
from labeling.textstats import comparison_text_figures

IMPORTED_SOURCE = "imported"
DEFAULT_IMPORT_LABELER = "imported"
ALLOWED_SUFFIXES = (".jsonl", ".json", ".ndjson")
LAYOUTS = ("auto", "2019", "2020")
_SAMPLE_KEY = re.compile(r"^sample(\d+)$")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text and jsonb reject these
_MAX_DEPTH = 32  # generation_params and the 2020 `extra` are shallow; deeper is an attack or a mistake
_BATCH = 1000  # rows per INSERT: bounded statements for 20 MB files
_SPLITS_2020 = {"train": Query.Split.TRAIN, "valid1": Query.Split.VALID, "valid2": Query.Split.TEST}
_LINES_SHOWN = 5  # per refused account: enough to find them, short enough for one message
MAX_LINE_ERRORS_LISTED = 1000  # a file of bad lines is named in full up to here, then counted
_PROGRESS_EVERY = 200  # records between progress reports of a long import
PREVIEW_ROWS = 10  # rows a dry run shows as they will be stored


@dataclass
class ImportResult:
    """What an import wrote, and under whose accounts."""

    lines: int = 0
    queries_created: int = 0
    samples_created: int = 0
    comparisons_created: int = 0
    labels_created: int = 0
    labelers_created: int = 0
    import_id: int | None = None
    sha256: str = ""
    previously_imported: bool = False  # the same content was imported into this project before
    previous_import_ids: list[int] = field(default_factory=list)
    accounts_created: list[str] = field(default_factory=list)  # new import accounts
    accounts_reused: list[str] = field(default_factory=list)  # import accounts of earlier imports of the project
    accounts_existing: list[str] = field(default_factory=list)  # listed in labelers_existing and written under


@dataclass(frozen=True)
class LineError:
    """One bad line: where ("line 7", "item 2") and the whole message ("line 7: missing key 'sample3'.")."""

    where: str
    message: str

    @property
    def number(self) -> int | None:
        tail = self.where.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else None


class LineErrors:
    """Collects the bad lines of one file, in file order; lists the first MAX_LINE_ERRORS_LISTED, counts all."""

    def __init__(self) -> None:
        self.listed: list[LineError] = []
        self.total = 0
        self.field = "file"

    def __bool__(self) -> bool:
        return self.total > 0

    def add(self, where: str, error: InvalidInput) -> None:
        if not self.total and error.field:
            self.field = error.field  # e.g. "tokenizer" when token ids came without one
        self.total += 1
        if len(self.listed) < MAX_LINE_ERRORS_LISTED:
            self.listed.append(LineError(where=where, message=error.message))

    def raise_if_any(self) -> None:
        if self.total:
            raise BadLines(self.listed, total=self.total, field=self.field)


class BadLines(InvalidInput):
    """Every bad line of a file (the first MAX_LINE_ERRORS_LISTED of them), one per message line, in file
    order; nothing was written. With one bad line the message is that line's message alone."""

    def __init__(self, errors: list[LineError], *, total: int, field: str = "file"):
        more = total - len(errors)
        message = "\n".join(e.message for e in errors) + (f"\n… and {more} more bad lines." if more > 0 else "")
        super().__init__(message, field=field)
        self.errors = errors
        self.total = total


# ---------------------------------------------------------------- reading files


def import_read(source: bytes | IO[bytes], *, name: str | None = None, max_bytes: int | None = None) -> bytes:
    """The raw bytes of an upload, after the type and size checks (nothing is parsed yet).

    The limit is settings.IMPORT_MAX_BYTES unless `max_bytes` is given (operators' commands).
    """
    limit = max_bytes or settings.IMPORT_MAX_BYTES
    if name and not name.lower().endswith(ALLOWED_SUFFIXES):
        raise InvalidInput("Only JSON Lines or JSON files (.jsonl, .json, .ndjson) can be imported.", field="file")
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if len(data) > limit:
            raise PayloadTooLarge(_too_large(len(data), limit))
        return data
    size = getattr(source, "size", None)
    if size is not None and size > limit:
        raise PayloadTooLarge(_too_large(size, limit))
    data = source.read(limit + 1)  # one byte past the limit tells "too large" without reading the rest
    if len(data) > limit:
        raise PayloadTooLarge(_too_large(None, limit))
    return data


def _too_large(size: int | None, limit: int) -> str:
    shown = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return f"The file is {shown}; imports are limited to {limit} bytes (IMPORT_MAX_BYTES). Split it into smaller files."


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def import_rows(data: bytes, errors: LineErrors) -> Iterator[tuple[str, dict]]:
    """(where, object) for each good record: where is "line N" (JSON Lines) or "item N" (a JSON array).

    A bad line (invalid JSON, not an object, text PostgreSQL cannot store) is added to `errors` and
    reading goes on, so one pass names every bad line; a file that is not text, not a JSON array
    when it starts with "[", or has no records at all, is refused at once.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInput(f"line {line}: the file is not UTF-8 text.", field="file") from error
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text, parse_constant=_no_constants)
        except RecursionError as error:
            raise InvalidInput(f"line 1: JSON nested more than {_MAX_DEPTH} levels deep.", field="file") from error
        except ValueError as error:
            raise InvalidInput(f"line {getattr(error, 'lineno', '?')}: invalid JSON ({_json_msg(error)}).", field="file") from error
        if not isinstance(items, list):
            raise InvalidInput("line 1: expected a JSON array of objects.", field="file")
        numbered = ((f"item {n}", item) for n, item in enumerate(items, start=1))
    else:
        numbered = _jsonl(text, errors)
    seen = False
    for where, obj in numbered:
        seen = True
        try:
            if not isinstance(obj, dict):
                raise InvalidInput(f"{where}: expected a JSON object, got {type(obj).__name__}.", field="file")
            _check_storable(where, obj)
        except InvalidInput as error:
            errors.add(where, error)
            continue
        yield where, obj
    if not seen and not errors:
        raise InvalidInput("The file has no records.", field="file")


def import_count_records(data: bytes) -> int:
    """How many records a file holds (non-blank lines, or a JSON array's items), without checking them:
    whether an import runs in the request or as a task, and the total of its progress bar."""
    if data.lstrip().startswith(b"["):
        try:
            items = json.loads(data, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            return 0
        return len(items) if isinstance(items, list) else 0
    return sum(1 for line in data.split(b"\n") if line.strip())


def _jsonl(text: str, errors: LineErrors) -> Iterator[tuple[str, object]]:
    # split("\n"), not splitlines(): U+2028 and friends may sit unescaped inside JSON strings.
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constants)
        except RecursionError:
            errors.add(f"line {n}", InvalidInput(f"line {n}: JSON nested more than {_MAX_DEPTH} levels deep.",
                                                 field="file"))
            continue
        except ValueError as error:
            errors.add(f"line {n}", InvalidInput(f"line {n}: invalid JSON ({_json_msg(error)}).", field="file"))
            continue
        yield f"line {n}", obj


def _check_storable(where: str, obj: dict) -> None:
    """Refuse what PostgreSQL cannot store (NUL characters, unpaired surrogates, in text or jsonb) and
    deep nesting, as a 400 naming the line rather than a 500 at INSERT time."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"{where}: JSON nested more than {_MAX_DEPTH} levels deep.", field="file")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and _UNSTORABLE.search(value):
            raise InvalidInput(f"{where}: text contains a NUL character (\\u0000) or an unpaired surrogate "
                               "(\\ud800–\\udfff), which cannot be stored.", field="file")


def _json_msg(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}"
    return str(error)


# ---------------------------------------------------------------- tokenizers


class TokenDecoder(Protocol):
    def decode(self, ids: list[int]) -> str: ...


class BytesDecoder:
    """Token ids are UTF-8 bytes (0–255)."""

    name = "bytes"

    def decode(self, ids: list[int]) -> str:
        bad = next((i for i in ids if not 0 <= i <= 255), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is not a byte (0–255)")
        return bytes(ids).decode("utf-8", errors="replace")


class HuggingFaceDecoder:
    """A tokenizer saved in a local folder (`save_pretrained`); loaded without network access."""

    def __init__(self, folder: Path):
        # Local import: transformers takes seconds to import and only this path needs it.
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as error:
            raise InvalidInput(f"Cannot load a tokenizer from {folder}: {error}", field="tokenizer") from error
        self.name = str(folder)

    def decode(self, ids: list[int]) -> str:
        size = len(self.tokenizer)
        bad = next((i for i in ids if not 0 <= i < size), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside the tokenizer's vocabulary (size {size})")
        return self.tokenizer.decode(ids)


def tokenizer_load(spec: str, *, allowed_root: Path | None = None) -> TokenDecoder:
    """"bytes", or a local tokenizer folder (inside `allowed_root` when given, as the API requires)."""
    if spec == "bytes":
        return BytesDecoder()
    folder = Path(spec).expanduser().resolve()
    if allowed_root is not None and not folder.is_relative_to(Path(allowed_root).resolve()):
        raise InvalidInput(f'tokenizer must be "bytes" or a folder under {allowed_root}.', field="tokenizer")
    if not folder.is_dir():
        raise InvalidInput(f'tokenizer must be "bytes" or an existing local tokenizer folder; {spec!r} is neither.',
                           field="tokenizer")
    return HuggingFaceDecoder(folder)


# ---------------------------------------------------------------- parsed lines


@dataclass(frozen=True)
class _QuerySpec:
    context: str
    reference: str = ""
    external_id: str = ""
    split: str = Query.Split.TRAIN

    @property
    def key(self) -> tuple:
        return ("id", self.external_id) if self.external_id else ("context", self.context, self.reference, self.split)


@dataclass(frozen=True)
class _SampleSpec:
    text: str
    source: str = IMPORTED_SOURCE
    tokens: list[int] | None = None
    generation_params: dict = field(default_factory=dict)


@dataclass
class _Row:
    where: str
    query: _QuerySpec
    samples: list[_SampleSpec]
    best: int | None = None
    labeler: str = ""
    unsure: bool = False
    external_id: str = ""
    batch: str = ""
    confidence: int | None = None  # 2020 `extra.confidence`, canonical (PairwiseConfidence)
    ranking: list[int] | None = None  # 2019 layout `ranks` (ranking projects)
    likert: dict | None = None  # 2019 layout `likert` (projects with Likert axes)
    none_acceptable: bool = False  # 2019 layout `none_acceptable` (projects that offer it)


def _str(obj: dict, key: str, where: str, *, required: bool = False, max_length: int | None = None) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise InvalidInput(f"{where}: missing key {key!r}.", field="file")
        return ""
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "external_id"):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: {key!r} must be a string.", field="file")
    if required and not value.strip():
        raise InvalidInput(f"{where}: {key!r} is empty.", field="file")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{where}: {key!r} is longer than {max_length} characters.", field="file")
    return value


def _text(value, where: str, key: str, decoder: TokenDecoder | None, pad_id: int | None) -> tuple[str, list[int] | None]:
    """A text given as a string or as token ids (decoded); returns (text, tokens or None)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        if decoder is None:
            raise InvalidInput(f'{where}: {key!r} is a list of token ids; pass a tokenizer ("bytes" or a local '
                               "tokenizer folder) to decode it.", field="tokenizer")
        ids = list(value)
        while pad_id is not None and ids and ids[-1] == pad_id:
            ids.pop()
        try:
            text = decoder.decode(ids)
        except ValueError as error:
            raise InvalidInput(f"{where}: {key!r}: {error}.", field="file") from error
        if _UNSTORABLE.search(text):
            raise InvalidInput(f"{where}: {key!r} decodes to a NUL character (byte 0), which cannot be stored.",
                               field="file")
        return text, ids
    raise InvalidInput(f"{where}: {key!r} must be a string or a list of integer token ids.", field="file")


def _split(obj: dict, where: str, mapping: dict[str, str] | None = None) -> str:
    raw = _str(obj, "split", where)
    if not raw:
        return Query.Split.TRAIN
    value = (mapping or {}).get(raw, raw)
    if value not in Query.Split.values:
        allowed = sorted(set(Query.Split.values) | set(mapping or {}))
        raise InvalidInput(f"{where}: split {raw!r} is not one of {', '.join(allowed)}.", field="file")
    return value


def _username(value: str, where: str) -> str:
    try:
        UnicodeUsernameValidator()(value)
    except ValidationError as error:
        raise InvalidInput(f"{where}: labeler name {value!r} is not a valid user name.", field="file") from error
    if len(value) > 150:
        raise InvalidInput(f"{where}: labeler name is longer than 150 characters.", field="file")
    return value


def _valid_username(value: str) -> bool:
    try:
        UnicodeUsernameValidator()(value)
    except ValidationError:
        return False
    return len(value) <= 150


def _best(obj: dict, key: str, where: str, k: int) -> int | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < k:
        raise InvalidInput(f"{where}: {key!r} must be an integer from 0 to {k - 1}, got {value!r}.", field="file")
    return value


def _parse_2019(where: str, obj: dict, *, project: Project, decoder, pad_id) -> _Row:
    indices = sorted(int(m.group(1)) for key in obj if (m := _SAMPLE_KEY.match(key)))
    if "query" not in obj:
        raise InvalidInput(f"{where}: missing key 'query'.", field="file")
    if len(indices) != project.k:
        raise InvalidInput(
            f"{where}: the line has {len(indices)} samples (sampleN keys) but project {project.slug!r} has K={project.k}.",
            field="file",
        )
    missing = next((i for i in range(project.k) if i not in indices), None)
    if missing is not None:
        raise InvalidInput(f"{where}: missing key 'sample{missing}'.", field="file")
    context, _ = _text(obj["query"], where, "query", decoder, pad_id)
    samples = []
    for i in range(project.k):
        text, tokens = _text(obj[f"sample{i}"], where, f"sample{i}", decoder, pad_id)
        samples.append(_SampleSpec(text=text, tokens=tokens))
    labeler = _str(obj, "labeler", where)
    unsure = obj.get("unsure", False)
    if not isinstance(unsure, bool):
        raise InvalidInput(f"{where}: 'unsure' must be true or false.", field="file")
    best = _best(obj, "best", where, project.k)
    ranking, likert, none_acceptable = _answer_parts_2019(where, obj, project=project, best=best)
    if ranking is not None and best is None:
        best = ranking.index(1)
    return _Row(
        where=where,
        query=_QuerySpec(context=context, split=_split(obj, where)),
        samples=samples,
        best=best,
        labeler=_username(labeler, where) if labeler else "",
        unsure=unsure,
        external_id=_str(obj, "external_id", where, max_length=200),
        batch=_str(obj, "batch", where, max_length=100),
        ranking=ranking,
        likert=likert,
        none_acceptable=none_acceptable,
    )


def _answer_parts_2019(where: str, obj: dict, *, project: Project, best: int | None):
    """A 2019 line's `ranks`, `likert` and `none_acceptable` (our export writes them), checked against the
    project: a ranking project's answered line needs its ranks (`best`, if given, in the top tier); ratings must
    cover the project's axes (they may be absent: not every label was rated); none acceptable only where the
    project offers it. A line without an answer carries none of them."""
    ranks, likert, none_acceptable = obj.get("ranks"), obj.get("likert"), obj.get("none_acceptable", False)
    is_ranking = project.label_type == Project.LabelType.RANKING
    if ranks is not None and not is_ranking:
        raise InvalidInput(f"{where}: 'ranks' given, but project {project.slug!r} does not rank (label type "
                           f"{project.label_type}).", field="file")
    if likert is not None and not project.likert_axes:
        raise InvalidInput(f"{where}: 'likert' given, but project {project.slug!r} has no Likert axes.", field="file")
    if not isinstance(none_acceptable, bool):
        raise InvalidInput(f"{where}: 'none_acceptable' must be true or false.", field="file")
    if none_acceptable and not project.allow_none_acceptable:
        raise InvalidInput(f"{where}: 'none_acceptable' given, but project {project.slug!r} does not offer it.",
                           field="file")
    answered = best is not None or ranks is not None
    if not answered and (likert is not None or none_acceptable):
        raise InvalidInput(f"{where}: 'likert' and 'none_acceptable' go with an answer ('best' or 'ranks').",
                           field="file")
    if is_ranking and ranks is None and best is not None:
        raise InvalidInput(f"{where}: project {project.slug!r} ranks its samples: an answered line needs 'ranks' "
                           "(the rank of each sample, 1 = best, equal ranks tie).", field="file")
    if ranks is not None:
        problem = Ranking(project.k).errors(ranks)
        if problem:
            raise InvalidInput(f"{where}: 'ranks': {problem}", field="file")
        if best is not None and ranks[best] != 1:
            raise InvalidInput(f"{where}: 'best' is sample{best}, which 'ranks' does not put first.", field="file")
    if likert is not None:
        problem = LikertAxes.errors(likert, project.likert_axes, project.k)
        if problem:
            raise InvalidInput(f"{where}: 'likert': {problem}", field="file")
    return (list(ranks) if ranks is not None else None,
            {axis: list(likert[axis]) for axis in project.likert_axes} if likert is not None else None,
            none_acceptable)


TLDR_CUE = "\n\nTL;DR:"  # 2020's query ends with it: the policy and the reward model read the summary after the cue


def _context_2020(info: dict, where: str) -> str:
    """The query as 2020 wrote it: "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:" (parts
    the line lacks left out), or for a CNN/DM article "Article:\n{article}\n\nTL;DR:\n"; a text that already ends
    with the cue (one our 2020 export wrote) keeps one."""
    post, article = _str(info, "post", where), _str(info, "article", where)
    if not (post.strip() or article.strip()):
        raise InvalidInput(f"{where}: missing key 'info.post' (or 'info.article').", field="file")
    if not post.strip():
        return article if article.rstrip().endswith(TLDR_CUE.strip()) else f"Article:\n{article}{TLDR_CUE}\n"
    body = post
    title, subreddit = _str(info, "title", where), _str(info, "subreddit", where)
    parts = ([f"SUBREDDIT: r/{subreddit}"] if subreddit else []) + ([f"TITLE: {title}"] if title else [])
    context = "\n\n".join([*parts, f"POST: {body}"]) if parts else body
    return context if context.rstrip().endswith(TLDR_CUE.strip()) else context + TLDR_CUE


def _parse_2020(where: str, obj: dict, *, project: Project, decoder, pad_id) -> _Row:
    info = obj.get("info")
    if not isinstance(info, dict):
        raise InvalidInput(f"{where}: missing key 'info' (an object with id and post).", field="file")
    summaries = obj.get("summaries")
    if not isinstance(summaries, list):
        raise InvalidInput(f"{where}: missing key 'summaries'.", field="file")
    if len(summaries) != 2:
        raise InvalidInput(f"{where}: 'summaries' has {len(summaries)} entries; the 2020 layout has 2.", field="file")
    samples = []
    for i, summary in enumerate(summaries):
        if not isinstance(summary, dict) or "text" not in summary:
            raise InvalidInput(f"{where}: missing key 'summaries[{i}].text'.", field="file")
        text, tokens = _text(summary["text"], where, f"summaries[{i}].text", decoder, pad_id)
        policy = _str(summary, "policy", where, max_length=200) or IMPORTED_SOURCE
        note = _str(summary, "note", where)
        samples.append(_SampleSpec(text=text, tokens=tokens, source=policy,
                                   generation_params={"note": note} if note else {}))
    worker = _str(obj, "worker", where)
    best = _best(obj, "choice", where, 2)
    extra = obj.get("extra")
    confidence = PairwiseConfidence.from_2020(best, extra.get("confidence")) if isinstance(extra, dict) else None
    # Our 2020 export's extra.none_acceptable, kept where the project offers it and the line has a choice.
    none_acceptable = (isinstance(extra, dict) and extra.get("none_acceptable") is True and best is not None
                       and project.allow_none_acceptable)
    return _Row(
        where=where,
        query=_QuerySpec(context=_context_2020(info, where), external_id=_str(info, "id", where, required=True,
                                                                                max_length=200),
                         split=_split(obj, where, _SPLITS_2020)),
        samples=samples,
        best=best,
        labeler=_username(worker, where) if worker else "",
        batch=_str(obj, "batch", where, max_length=100),
        confidence=confidence,
        none_acceptable=none_acceptable,
    )


def _parse_query_line(where: str, obj: dict, *, decoder, pad_id) -> _Row:
    context, _ = _text(obj.get("context"), where, "context", decoder, pad_id) if "context" in obj else ("", None)
    if not context.strip():
        raise InvalidInput(f"{where}: missing key 'context'.", field="file")
    samples_raw = obj.get("samples", [])
    if not isinstance(samples_raw, list):
        raise InvalidInput(f"{where}: 'samples' must be a list.", field="file")
    samples = []
    for i, item in enumerate(samples_raw):
        if not isinstance(item, dict) or "text" not in item:
            raise InvalidInput(f"{where}: missing key 'samples[{i}].text'.", field="file")
        text, tokens = _text(item["text"], where, f"samples[{i}].text", decoder, pad_id)
        params = item.get("generation_params", {})
        if not isinstance(params, dict):
            raise InvalidInput(f"{where}: 'samples[{i}].generation_params' must be an object.", field="file")
        source = _str(item, "source", where, max_length=200) or IMPORTED_SOURCE
        samples.append(_SampleSpec(text=text, tokens=tokens, source=source, generation_params=params))
    return _Row(
        where=where,
        query=_QuerySpec(context=context, reference=_str(obj, "reference", where),
                         external_id=_str(obj, "external_id", where, max_length=200), split=_split(obj, where)),
        samples=samples,
    )


# ---------------------------------------------------------------- parsing a whole file


@dataclass
class _Parsed:
    rows: list[_Row]
    errors: LineErrors
    layout: str = ""  # "2019" or "2020" once read (for comparisons); "" for queries
    total: int = 0  # records counted before parsing (the progress bar's end); 0 when nobody asked

    @property
    def records(self) -> int:
        return len(self.rows) + self.errors.total


class _Progress:
    """Calls on_progress(records read, records in the file) every _PROGRESS_EVERY records, and at the end."""

    def __init__(self, data: bytes, on_progress: Callable[[int, int], None] | None):
        self.on_progress = on_progress
        self.total = import_count_records(data) if on_progress else 0
        self.last = 0

    def __call__(self, parsed: _Parsed, *, final: bool = False) -> None:
        done = parsed.records
        if self.on_progress and (final or done - self.last >= _PROGRESS_EVERY):
            self.last = done
            self.on_progress(done, max(self.total, done))


def _layout_check(project: Project, layout: str) -> None:
    if layout == "2020" and project.k != 2:
        raise InvalidInput(f"The 2020 layout compares 2 summaries; project {project.slug!r} has K={project.k}.",
                           field="layout")


def _comparison_rows(project: Project, data: bytes, *, layout: str, decoder, pad_id, default_labeler: str,
                     on_progress=None) -> _Parsed:
    """Every line parsed: good ones as rows, bad ones as errors. A wrong layout for the project is refused at once."""
    _layout_check(project, layout)
    parsed = _Parsed(rows=[], errors=LineErrors(), layout=layout)
    progress = _Progress(data, on_progress)
    parsed.total = progress.total
    for where, obj in import_rows(data, parsed.errors):
        if parsed.layout == "auto":
            parsed.layout = "2020" if "summaries" in obj else "2019"
            _layout_check(project, parsed.layout)
        parse = _parse_2020 if parsed.layout == "2020" else _parse_2019
        try:
            row = parse(where, obj, project=project, decoder=decoder, pad_id=pad_id)
        except InvalidInput as error:
            parsed.errors.add(where, error)
        else:
            row.labeler = row.labeler or default_labeler
            parsed.rows.append(row)
        progress(parsed)
    if parsed.layout == "auto":  # every line was bad: nothing told the layout
        parsed.layout = ""
    progress(parsed, final=True)
    return parsed


def _query_rows(project: Project, data: bytes, *, decoder, pad_id, on_progress=None) -> _Parsed:
    """Every line parsed, and every external_id repeated in the file or already used in the project named."""
    parsed = _Parsed(rows=[], errors=LineErrors())
    progress = _Progress(data, on_progress)
    parsed.total = progress.total
    for where, obj in import_rows(data, parsed.errors):
        try:
            parsed.rows.append(_parse_query_line(where, obj, decoder=decoder, pad_id=pad_id))
        except InvalidInput as error:
            parsed.errors.add(where, error)
        progress(parsed)
    seen: dict[str, str] = {}
    repeats: set[str] = set()
    for row in parsed.rows:
        ext = row.query.external_id
        if ext and ext in seen:
            parsed.errors.add(row.where, InvalidInput(f"{row.where}: external_id {ext!r} repeats {seen[ext]}.",
                                                      field="file"))
            repeats.add(row.where)
        elif ext:
            seen[ext] = row.where
    taken = set(Query.objects.filter(project=project, external_id__in=seen).values_list("external_id", flat=True))
    for row in parsed.rows:
        if row.query.external_id in taken and row.where not in repeats:
            parsed.errors.add(row.where, InvalidInput(
                f"{row.where}: a query with external_id {row.query.external_id!r} exists in this project.",
                field="file"))
    progress(parsed, final=True)
    return parsed


# ---------------------------------------------------------------- writing


def _import_accounts(project: Project, users: Iterable) -> set[int]:
    """Ids of `users` that are import accounts of `project`: created by one of its imports, and still
    unable to log in, not staff, superuser or researcher (an account later given to a person is no longer one)."""
    ids = [u.id for u in users if not (u.has_usable_password() or u.is_staff or u.is_superuser)]
    created = set(Import.objects.filter(project=project, accounts_created__in=ids)
                  .values_list("accounts_created", flat=True))
    return created - set(researchers().filter(id__in=created).values_list("id", flat=True))


@dataclass
class ExistingAccount:
    """An account that exists and that the file's labels would go under: a person, unless listed it is refused."""

    username: str
    role: str  # "contractor", "researcher", "admin" or "" (no role)
    lines: list[str]
    listed: bool = False

    @property
    def lines_text(self) -> str:
        return _lines_text(self.lines)


@dataclass
class _LabelersPlan:
    users: dict  # username → existing user, for every existing account the labels name
    new: set[str]  # accounts to create
    reused: list[str]  # import accounts of earlier imports of this project (no listing needed)
    existing: list[ExistingAccount]  # people: written under only when listed


def _labelers_plan(project: Project, rows: Sequence[_Row], listed: Iterable[str]) -> _LabelersPlan:
    """Whose accounts the labels of `rows` go under; refuses a listed name that is not a valid user name
    or has no account (the names listed but not used by the file are fine)."""
    listed = set(listed)
    bad = sorted(name for name in listed if not _valid_username(name))
    if bad:
        raise InvalidInput(f"labelers_existing: {', '.join(map(repr, bad))} is not a valid user name.",
                           field="labelers_existing")
    lines: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.best is not None:
            lines[row.labeler].append(row.where)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=lines.keys() | listed)}
    unknown = sorted(listed - users.keys())
    if unknown:
        raise InvalidInput(f"labelers_existing: no account named {', '.join(map(repr, unknown))}.",
                           field="labelers_existing")
    allowed = _import_accounts(project, [u for name, u in users.items() if name in lines])
    named = {name: users[name] for name in lines if name in users}
    return _LabelersPlan(
        users=named,
        new=set(lines) - users.keys(),
        reused=sorted(name for name, u in named.items() if u.id in allowed and name not in listed),
        existing=[ExistingAccount(username=name, role=user_role(u) or "", lines=lines[name], listed=name in listed)
                  for name, u in sorted(named.items()) if u.id not in allowed or name in listed],
    )


def _labelers_check(project: Project, rows: Sequence[_Row], listed: Iterable[str]) -> tuple[dict, set[str]]:
    """(username → existing user, names to create): refuses, before anything is written, a listed name
    with no account and a file naming an existing account that is neither listed nor an import account."""
    plan = _labelers_plan(project, rows, listed)
    refused = [a for a in plan.existing if not a.listed]
    if refused:
        raise ExistingAccounts(
            "The file writes labels under existing accounts; nothing was written. List each one in "
            "labelers_existing to write under it deliberately: "
            + "; ".join(f"{a.username!r} ({a.role or 'no role'}) on {a.lines_text}" for a in refused) + ".",
            accounts={a.username: a.lines for a in refused})
    return plan.users, plan.new


def _lines_text(where: list[str]) -> str:
    shown = ", ".join(where[:_LINES_SHOWN])
    return shown + (f" and {len(where) - _LINES_SHOWN} more" if len(where) > _LINES_SHOWN else "")


def _labelers_ensure(record: Import, existing: dict, new: set[str], listed: Iterable[str],
                     result: ImportResult) -> dict[str, object]:
    """The accounts of the file's labels: `existing` (checked by _labelers_check) and `new` created as
    contractors that cannot log in; the import records which it created and which people it wrote under."""
    User = get_user_model()
    users = dict(existing)
    listed = set(listed)
    for name in sorted(new):
        user = User.objects.create_user(username=name, password=None)  # unusable password: cannot log in
        user_set_role(user, CONTRACTOR)
        users[name] = user
    result.labelers_created = len(new)
    result.accounts_created = sorted(new)
    result.accounts_existing = sorted(name for name in existing if name in listed)
    result.accounts_reused = sorted(name for name in existing if name not in listed)
    record.accounts_created.add(*(users[name] for name in new))
    record.accounts_existing.add(*(users[name] for name in result.accounts_existing))
    record.accounts_reused.add(*(users[name] for name in result.accounts_reused))
    return users


def _queries_write(project: Project, rows: Sequence[_Row], result: ImportResult) -> tuple[dict, list[int]]:
    """(query key → Query, ids of reused queries): existing ones by external id, the rest created in one go."""
    by_key: dict[tuple, Query] = {}
    external = {r.query.external_id for r in rows if r.query.external_id}
    if external:
        for q in Query.objects.filter(project=project, external_id__in=external):
            by_key[("id", q.external_id)] = q
    reused = [q.id for q in by_key.values()]
    new: dict[tuple, Query] = {}
    for row in rows:
        spec = row.query
        if spec.key not in by_key and spec.key not in new:
            new[spec.key] = Query(project=project, context=spec.context, reference=spec.reference,
                                  external_id=spec.external_id, split=spec.split)
    Query.objects.bulk_create(new.values(), batch_size=_BATCH)
    result.queries_created += len(new)
    by_key.update(new)
    return by_key, reused


def _samples_write(rows: Sequence[_Row], queries: dict, reused: list[int], result: ImportResult) -> list[list[Sample]]:
    """The samples of each row, deduplicated by (query, text, source); repeats within a row stay distinct.

    Samples of `reused` (pre-existing) queries are matched too, so a later batch shares them.
    """
    existing: dict[tuple, list[Sample]] = defaultdict(list)
    for s in Sample.objects.filter(query_id__in=reused).order_by("id"):
        existing[(s.query_id, s.text, s.source)].append(s)
    new: list[Sample] = []
    per_row: list[list[Sample]] = []
    for row in rows:
        query = queries[row.query.key]
        seen_in_row: dict[tuple, int] = defaultdict(int)
        samples = []
        for spec in row.samples:
            key = (query.id, spec.text, spec.source)
            n = seen_in_row[key]
            seen_in_row[key] += 1
            if n >= len(existing[key]):
                sample = Sample(query=query, text=spec.text, tokens=spec.tokens, source=spec.source,
                                generation_params=spec.generation_params)
                existing[key].append(sample)
                new.append(sample)
            samples.append(existing[key][n])
        per_row.append(samples)
    Sample.objects.bulk_create(new, batch_size=_BATCH)
    result.samples_created += len(new)
    return per_row


def _comparisons_write(project: Project, rows: Sequence[_Row], samples: list[list[Sample]], queries: dict,
                       users: dict, *, batch: str, is_calibration: bool, record: Import, result: ImportResult) -> None:
    # 1. Group lines into comparisons: same query, samples, external id and batch, one label per labeler.
    groups: dict[tuple, list[dict]] = defaultdict(list)
    ordered: list[dict] = []
    for row, row_samples in zip(rows, samples, strict=True):
        key = (row.query.key, tuple(s.id for s in row_samples), row.external_id, row.batch or batch)
        entry = None
        if row.best is not None:
            entry = next((e for e in groups[key] if row.labeler not in e["labelers"]), None)
        if entry is None:
            entry = {"row": row, "samples": row_samples, "labels": [], "labelers": set()}
            groups[key].append(entry)
            ordered.append(entry)
        if row.best is not None:
            entry["labels"].append(row)
            entry["labelers"].add(row.labeler)

    # 2. Comparisons with counts that match their labels, then their samples in canonical order.
    comparisons = []
    for entry in ordered:
        row = entry["row"]
        n_labels = len(entry["labels"])
        base = max(project.calibration_labels_wanted, project.labels_per_comparison) if is_calibration \
            else project.labels_per_comparison
        wanted = max(base, n_labels)
        query = queries[row.query.key]
        length_top, copy_top, text_chars = comparison_text_figures(query.context, [s.text for s in entry["samples"]])
        comparisons.append(Comparison(
            project=project, query=query, labels_wanted=wanted, label_count=n_labels,
            open_slots=wanted - n_labels, is_calibration=is_calibration, batch=row.batch or batch,
            external_id=row.external_id, length_top=length_top, copy_top=copy_top, text_chars=text_chars,
            source_import=record,
        ))
    Comparison.objects.bulk_create(comparisons, batch_size=_BATCH)
    ComparisonSample.objects.bulk_create(
        [ComparisonSample.of(c, s, i)
         for c, entry in zip(comparisons, ordered, strict=True)
         for i, s in enumerate(entry["samples"])],
        batch_size=_BATCH,
    )
    result.comparisons_created += len(comparisons)

    # 3. A submitted assignment (identity display order) and a label per answer.
    now = timezone.now()
    pending = [(c, row) for c, entry in zip(comparisons, ordered, strict=True) for row in entry["labels"]]
    assignments = [
        Assignment(comparison=c, labeler=users[row.labeler], display_order=list(range(project.k)), leased_at=now,
                   expires_at=now, state=Assignment.State.SUBMITTED)
        for c, row in pending
    ]
    Assignment.objects.bulk_create(assignments, batch_size=_BATCH)
    Label.objects.bulk_create(
        [Label(assignment=a, comparison=c, labeler=a.labeler, chosen_index=row.best, display_position=row.best,
               unsure=row.unsure, confidence=row.confidence, ranking=row.ranking, likert=row.likert,
               none_acceptable=row.none_acceptable, duration_ms=0, source_import=record)
         for a, (c, row) in zip(assignments, pending, strict=True)],
        batch_size=_BATCH,
    )
    result.labels_created += len(pending)


def _import_begin(project: Project, data: bytes, *, kind: str, name: str | None, imported_by, via: str,
                  result: ImportResult, record: Import | None = None, **fields) -> Import:
    """The Import row of this write (inside its transaction), and whether the same content came before.

    `record` is a task's queued Import: it is filled in and becomes DONE with the rows (or stays as it
    was when the transaction rolls back)."""
    digest = hashlib.sha256(data).hexdigest()
    result.sha256 = digest
    result.previous_import_ids = list(_imports_of_content(project, digest, exclude=record))
    result.previously_imported = bool(result.previous_import_ids)
    values = dict(project=project, kind=kind, file_name=(name or "")[:255], sha256=digest, size_bytes=len(data),
                  imported_by=imported_by, via=via, status=Import.Status.DONE, **fields)
    if record is None:
        record = Import.objects.create(**values)
    else:
        for key, value in values.items():
            setattr(record, key, value)
        record.save(update_fields=list(values))  # not the progress, which the task writes meanwhile
    result.import_id = record.id
    return record


def _imports_of_content(project: Project, digest: str, *, exclude: Import | None = None):
    """Ids of the project's finished imports of the same bytes (a failed or queued one wrote nothing)."""
    earlier = Import.objects.filter(project=project, sha256=digest, status=Import.Status.DONE)
    if exclude is not None:
        earlier = earlier.exclude(id=exclude.id)
    return earlier.values_list("id", flat=True)


def _import_finish(record: Import, result: ImportResult) -> None:
    for name in ("lines", "queries_created", "samples_created", "comparisons_created", "labels_created"):
        setattr(record, name, getattr(result, name))
    record.save(update_fields=["lines", "queries_created", "samples_created", "comparisons_created",
                               "labels_created"])


# ---------------------------------------------------------------- services


def queries_import(*, project: Project, source: bytes | IO[bytes], name: str | None = None,
                   tokenizer: TokenDecoder | None = None, pad_id: int | None = None,
                   max_bytes: int | None = None, imported_by=None, via: str = Import.Via.CODE,
                   record: Import | None = None, on_progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Create queries (and their samples) from a queries file; all or nothing; recorded as an Import.

    An external_id already used in the project, or twice in the file, is an error (re-running
    an import must not double the data). A bad file raises BadLines naming every bad line.
    `record` and `on_progress` are a task's (import_execute): its queued Import, and a callback
    given (records read, records in the file) while the lines are read.
    """
    # 1. Size, type, then every line.
    data = import_read(source, name=name, max_bytes=max_bytes)
    parsed = _query_rows(project, data, decoder=tokenizer, pad_id=pad_id, on_progress=on_progress)
    parsed.errors.raise_if_any()
    rows = parsed.rows
    # 2. Write.
    result = ImportResult(lines=len(rows))
    with transaction.atomic():
        record = _import_begin(project, data, kind=Import.Kind.QUERIES, name=name, imported_by=imported_by, via=via,
                               result=result, record=record)
        queries: dict = {}
        for row in rows:  # one Query per line, even when two lines share a context
            queries[(row.where,)] = Query(project=project, context=row.query.context, reference=row.query.reference,
                                          external_id=row.query.external_id, split=row.query.split)
        Query.objects.bulk_create(queries.values(), batch_size=_BATCH)
        result.queries_created = len(queries)
        new_samples = [
            Sample(query=queries[(row.where,)], text=s.text, tokens=s.tokens, source=s.source,
                   generation_params=s.generation_params)
            for row in rows for s in row.samples
        ]
        Sample.objects.bulk_create(new_samples, batch_size=_BATCH)
        result.samples_created = len(new_samples)
        _import_finish(record, result)
    return result


def comparisons_import(*, project: Project, source: bytes | IO[bytes], name: str | None = None, layout: str = "auto",
                       tokenizer: TokenDecoder | None = None, pad_id: int | None = None,
                       labeler_username: str = DEFAULT_IMPORT_LABELER, batch: str = "",
                       is_calibration: bool = False, max_bytes: int | None = None,
                       labelers_existing: Iterable[str] = (), imported_by=None,
                       via: str = Import.Via.CODE, record: Import | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Create comparisons (and their queries, samples and labels) from a 2019- or 2020-layout file; all or nothing.

    layout "auto" reads the first record: "summaries" means 2020, otherwise 2019. The file's K
    must equal the project's K. A bad file raises BadLines naming every bad line. Labels under
    accounts that exist need `labelers_existing` (unless they are import accounts of this
    project): see the module docstring for whom they belong to. `record` and `on_progress`: as
    for queries_import.
    """
    if layout not in LAYOUTS:
        raise InvalidInput(f"layout must be one of {', '.join(LAYOUTS)}.", field="layout")
    default_labeler = _username(labeler_username or DEFAULT_IMPORT_LABELER, "labeler")
    # 1. Size, type, then every line.
    data = import_read(source, name=name, max_bytes=max_bytes)
    parsed = _comparison_rows(project, data, layout=layout, decoder=tokenizer, pad_id=pad_id,
                              default_labeler=default_labeler, on_progress=on_progress)
    parsed.errors.raise_if_any()
    rows = parsed.rows
    # 2. Whose accounts the labels go under (refused before anything is written), then write.
    listed = list(labelers_existing)
    result = ImportResult(lines=len(rows))
    with transaction.atomic():
        existing, new = _labelers_check(project, rows, listed)
        record = _import_begin(project, data, kind=Import.Kind.COMPARISONS, name=name, imported_by=imported_by,
                               via=via, result=result, record=record, layout=parsed.layout, batch=batch,
                               is_calibration=is_calibration)
        users = _labelers_ensure(record, existing, new, listed, result)
        queries, reused = _queries_write(project, rows, result)
        samples = _samples_write(rows, queries, reused, result)
        _comparisons_write(project, rows, samples, queries, users, batch=batch, is_calibration=is_calibration,
                           record=record, result=result)
        _import_finish(record, result)
    return result


# ---------------------------------------------------------------- the import page: dry run, big files as tasks


@dataclass
class ImportPreview:
    """What importing a file would do, found without writing anything (the import page's dry run)."""

    kind: str
    layout: str  # "2019" or "2020" as read; "" for queries
    sha256: str
    size_bytes: int
    records: int  # good and bad
    rows: list[_Row]  # the first good ones, as they will be stored
    errors: list[LineError]  # every bad line, in file order, up to MAX_LINE_ERRORS_LISTED
    error_count: int
    previous_imports: list[Import]  # this project's finished imports of the same bytes
    accounts_created: list[str] = field(default_factory=list)
    accounts_reused: list[str] = field(default_factory=list)
    accounts_existing: list[ExistingAccount] = field(default_factory=list)  # people: each needs a deliberate tick

    @property
    def ok(self) -> bool:
        return not self.error_count

    @property
    def errors_not_listed(self) -> int:
        return self.error_count - len(self.errors)


def import_dry_run(*, project: Project, source: bytes | IO[bytes], kind: str, name: str | None = None,
                   layout: str = "auto", tokenizer: TokenDecoder | None = None, pad_id: int | None = None,
                   labeler_username: str = DEFAULT_IMPORT_LABELER, labelers_existing: Iterable[str] = (),
                   max_bytes: int | None = None, rows_shown: int = PREVIEW_ROWS) -> ImportPreview:
    """Read and check a whole file as queries_import / comparisons_import would, and write nothing.

    Bad lines are collected, not raised; what the whole file cannot be (too large, not a .jsonl,
    not UTF-8, no records, a layout the project's K cannot take) raises as the imports do.
    """
    if kind not in Import.Kind.values:
        raise InvalidInput(f"kind must be one of {', '.join(Import.Kind.values)}.", field="kind")
    if layout not in LAYOUTS:
        raise InvalidInput(f"layout must be one of {', '.join(LAYOUTS)}.", field="layout")
    data = import_read(source, name=name, max_bytes=max_bytes)
    if kind == Import.Kind.QUERIES:
        parsed = _query_rows(project, data, decoder=tokenizer, pad_id=pad_id)
    else:
        default_labeler = _username(labeler_username or DEFAULT_IMPORT_LABELER, "labeler")
        parsed = _comparison_rows(project, data, layout=layout, decoder=tokenizer, pad_id=pad_id,
                                  default_labeler=default_labeler)
    digest = hashlib.sha256(data).hexdigest()
    previous = list(Import.objects.filter(id__in=list(_imports_of_content(project, digest)))
                    .select_related("imported_by").order_by("id"))
    errors = sorted(parsed.errors.listed, key=lambda e: (e.number is None, e.number or 0))
    preview = ImportPreview(kind=kind, layout=parsed.layout, sha256=digest, size_bytes=len(data),
                            records=parsed.records, rows=parsed.rows[:rows_shown], errors=errors,
                            error_count=parsed.errors.total, previous_imports=previous)
    if kind == Import.Kind.COMPARISONS:
        plan = _labelers_plan(project, parsed.rows, labelers_existing)
        preview.accounts_created = sorted(plan.new)
        preview.accounts_reused = plan.reused
        preview.accounts_existing = plan.existing
    return preview


def _stash_path(project: Project, digest: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", digest or ""):
        raise InvalidInput("The uploaded file is no longer available; upload it again.", field="file")
    return Path(settings.VAR_DIR) / "imports" / str(project.id) / f"{digest}.jsonl"


def import_stash(*, project: Project, data: bytes) -> str:
    """Keep an uploaded file's bytes between the dry run and the import (and for its task); returns its sha256.

    Copies older than IMPORT_STASH_MAX_AGE_S (a dry run never imported) are removed on the way."""
    digest = hashlib.sha256(data).hexdigest()
    path = _stash_path(project, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - getattr(settings, "IMPORT_STASH_MAX_AGE_S", 24 * 3600)
    for old in path.parent.parent.glob("*/*.jsonl"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)  # never a half-written copy under the final name
    return digest


def import_stashed(*, project: Project, sha256: str) -> bytes:
    """The bytes import_stash kept for this project, or InvalidInput when they are gone."""
    try:
        return _stash_path(project, sha256).read_bytes()
    except FileNotFoundError as error:
        raise InvalidInput("The uploaded file is no longer available; upload it again.", field="file") from error


def import_unstash(*, project: Project, sha256: str) -> None:
    _stash_path(project, sha256).unlink(missing_ok=True)


def import_start(*, project: Project, sha256: str, kind: str, name: str, options: dict, imported_by) -> Import:
    """Queue the import of a stashed file as a task: its Import is created QUEUED now, and the task
    (import_execute) writes everything or nothing, reporting progress on it."""
    from labeling.tasks import import_execute_task  # local import: the task imports this module

    data = import_stashed(project=project, sha256=sha256)
    with transaction.atomic():
        record = Import.objects.create(
            project=project, kind=kind, file_name=(name or "")[:255], sha256=sha256, size_bytes=len(data),
            imported_by=imported_by, via=Import.Via.WEB, status=Import.Status.QUEUED,
            batch=options.get("batch", ""), is_calibration=bool(options.get("calibration")), options=options,
            progress_total=import_count_records(data))
        transaction.on_commit(lambda: import_execute_task.delay(record.id))
    return record


def import_execute(*, import_id: int) -> None:
    """Run a queued import (the task's body): everything or nothing; a refused file marks it FAILED with
    the reason. A second delivery of the same task finds it no longer QUEUED and does nothing."""
    # 1. Claim it.
    if not Import.objects.filter(id=import_id, status=Import.Status.QUEUED).update(status=Import.Status.RUNNING):
        return
    record = Import.objects.select_related("project", "imported_by").get(id=import_id)
    project, options = record.project, record.options

    def on_progress(done: int, total: int) -> None:  # outside the write's transaction: the page sees it
        Import.objects.filter(id=import_id).update(progress_done=done, progress_total=total)

    # 2. Read the stashed bytes and import them as the page would have in the request.
    try:
        data = import_stashed(project=project, sha256=record.sha256)
        decoder = (tokenizer_load(options["tokenizer"], allowed_root=settings.ARTIFACTS_DIR)
                   if options.get("tokenizer") else None)
        common = dict(project=project, source=data, name=record.file_name, tokenizer=decoder,
                      pad_id=options.get("pad_id"), imported_by=record.imported_by, via=record.via, record=record,
                      on_progress=on_progress)
        if record.kind == Import.Kind.QUERIES:
            queries_import(**common)
        else:
            comparisons_import(**common, layout=options.get("layout", "auto"),
                               labeler_username=options.get("labeler") or DEFAULT_IMPORT_LABELER,
                               batch=options.get("batch", ""), is_calibration=bool(options.get("calibration")),
                               labelers_existing=options.get("labelers_existing", []))
    except LabelingError as error:
        import_fail(import_id=import_id, message=error.message)
    finally:
        import_unstash(project=project, sha256=record.sha256)


def import_fail(*, import_id: int, message: str) -> None:
    """Mark a task's import FAILED with its reason (its transaction wrote nothing); a finished one is left alone."""
    Import.objects.filter(id=import_id, status__in=[Import.Status.QUEUED, Import.Status.RUNNING]).update(
        status=Import.Status.FAILED, error=message[:20_000])
