"""Imports: formats, tokenizers, line-numbered errors, size limit, atomicity, label invariants, whose accounts
labels go under, and the import records."""
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from labeling.errors import ExistingAccounts, InvalidInput, PayloadTooLarge
from labeling.models import Assignment, Comparison, ComparisonSample, Import, Label, Query, Sample
from labeling.roles import CONTRACTOR, user_role
from labeling.services import comparisons_import, queries_import, tokenizer_load
from labeling.services.imports import BytesDecoder
from labeling.services.simulation import LabelerSpec, simulated_labelers_ensure
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _counts() -> tuple:
    return tuple(m.objects.count() for m in (Query, Sample, Comparison, ComparisonSample, Assignment, Label))


def _line(i: int = 0, k: int = 4, **extra) -> dict:
    return {"query": f"query {i}", **{f"sample{j}": f"sample {i}.{j}" for j in range(k)}, **extra}


# ---------------------------------------------------------------- queries


def test_queries_import_creates_queries_and_samples(project):
    result = queries_import(project=project, source=(FIXTURES / "queries.jsonl").read_bytes())
    assert (result.lines, result.queries_created, result.samples_created) == (3, 3, 3)
    first = Query.objects.get(external_id="q-1")
    assert first.project == project and first.split == "train"
    assert [(s.text, s.source, s.generation_params) for s in first.samples.order_by("id")] == [
        (" It never came back.", "policy:base", {"temperature": 0.7}), (" The crew sang.", "reference", {})]
    assert Query.objects.get(external_id="q-2").reference == " It was from her brother."
    third = Query.objects.get(external_id="")
    assert "\u2028" in third.context  # split on newlines only, never on U+2028 inside a string
    assert third.samples.get().source == "imported"


def test_queries_import_existing_external_id_is_refused(project):
    queries_import(project=project, source=_jsonl({"context": "a", "external_id": "x"}))
    with pytest.raises(InvalidInput, match="line 2: a query with external_id 'x' exists"):
        queries_import(project=project, source=_jsonl({"context": "b"}, {"context": "c", "external_id": "x"}))
    assert Query.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"context": "ok"}\n{"context": "ok"\n', "line 2: invalid JSON"),
        (b'{"context": "ok"}\n\n[1, 2]\n', "line 3: expected a JSON object"),
        (b'{"context": "ok"}\n{"reference": "no context"}\n', "line 2: missing key 'context'"),
        (b'{"context": "a", "split": "holdout"}\n', "line 1: split 'holdout' is not one of"),
        (b'{"context": "a", "samples": [{"source": "x"}]}\n', "line 1: missing key 'samples[0].text'"),
        (b'{"context": "a", "external_id": "d"}\n{"context": "b", "external_id": "d"}\n', "line 2: external_id 'd' repeats line 1"),
        (b'{"context": NaN}\n', "line 1: invalid JSON"),
        (b"\xff\xfe garbage", "line 1: the file is not UTF-8"),
        (b"\n \n", "no records"),
    ],
)
def test_queries_import_bad_file_names_the_line_and_writes_nothing(project, payload, message):
    before = _counts()
    with pytest.raises(InvalidInput, match=re.escape(message)):
        queries_import(project=project, source=payload)
    assert _counts() == before


def test_only_json_files_are_accepted(project):
    with pytest.raises(InvalidInput, match="Only JSON Lines or JSON files"):
        queries_import(project=project, source=b'{"context": "a"}\n', name="data.pkl")


@override_settings(IMPORT_MAX_BYTES=64)
def test_size_limit_is_checked_before_parsing(project):
    """Over the limit is 413 even when the content would not parse: the parser never runs."""
    with pytest.raises(PayloadTooLarge, match="limited to 64 bytes"):
        queries_import(project=project, source=b"not json at all " * 10)
    assert Query.objects.count() == 0


@override_settings(IMPORT_MAX_BYTES=64)
def test_size_limit_reads_a_stream_only_one_byte_past_the_limit(project):
    """A stream of unknown size is read up to limit + 1 bytes, never to its end."""
    stream = io.BytesIO(b"x" * 10_000)
    with pytest.raises(PayloadTooLarge, match="over 64 bytes"):
        queries_import(project=project, source=stream, name="big.jsonl")
    assert stream.tell() == 65
    assert Query.objects.count() == 0


def test_json_array_file_names_the_item(project):
    result = queries_import(project=project, source=b'[{"context": "a"}, {"context": "b"}]')
    assert result.queries_created == 2
    with pytest.raises(InvalidInput, match="item 2: missing key 'context'"):
        queries_import(project=project, source=b'[{"context": "a"}, {"nope": 1}]')


# ---------------------------------------------------------------- comparisons, 2019 layout


def test_2019_import_with_text_and_byte_tokens(project):
    result = comparisons_import(project=project, source=(FIXTURES / "comparisons_2019_k4.jsonl").read_bytes(),
                                tokenizer=tokenizer_load("bytes"))
    assert (result.comparisons_created, result.labels_created, result.queries_created) == (3, 2, 3)
    first, second, third = Comparison.objects.order_by("id")
    assert [e.sample.text for e in first.entries.select_related("sample")] == [
        " there was a king.", " a dragon slept.", " it rained.", " nothing happened."]
    assert second.query.context == "Byte ids: café"
    assert second.entries.get(position=0).sample.tokens == list(b" one")
    assert {e.sample.source for e in first.entries.select_related("sample")} == {"imported"}
    assert first.labels.get().chosen_index == 1 and second.labels.get().chosen_index == 3
    assert not third.labels.exists() and third.open_slots == 1


def test_imported_labels_keep_the_invariants(project):
    """label_count, open_slots and labels_wanted agree with the labels; each label has a submitted identity-order assignment."""
    project.labels_per_comparison = 3
    project.save()
    comparisons_import(project=project, source=_jsonl(_line(best=2, labeler="ann"), _line(best=0, labeler="bob")))
    comparison = Comparison.objects.get()  # same query and samples, two labelers: one comparison
    assert (comparison.labels_wanted, comparison.label_count, comparison.open_slots) == (3, 2, 1)
    for label in Label.objects.select_related("assignment"):
        assert label.assignment.state == Assignment.State.SUBMITTED
        assert label.assignment.display_order == [0, 1, 2, 3]
        assert label.assignment.labeler_id == label.labeler_id
        assert label.display_position == label.chosen_index
    assert sorted(Label.objects.values_list("labeler__username", "chosen_index")) == [("ann", 2), ("bob", 0)]


def test_labels_wanted_grows_to_the_number_of_imported_labels(project):
    comparisons_import(project=project, source=_jsonl(*[_line(best=i % 4, labeler=f"l{i}") for i in range(3)]))
    comparison = Comparison.objects.get()
    assert (comparison.labels_wanted, comparison.label_count, comparison.open_slots) == (3, 3, 0)


def test_same_labeler_twice_gives_two_comparisons(project):
    comparisons_import(project=project, source=_jsonl(_line(best=1), _line(best=2)))
    assert Comparison.objects.count() == 2
    assert Sample.objects.count() == 4  # the samples are shared, not copied


def test_imported_labels_go_to_a_contractor_account_that_cannot_log_in(project, researcher):
    result = comparisons_import(project=project, source=_jsonl(_line(best=0)), labeler_username="legacy-2019")
    user = get_user_model().objects.get(username="legacy-2019")
    assert result.labelers_created == 1
    assert user_role(user) == CONTRACTOR
    assert not user.has_usable_password()
    assert Label.objects.get().labeler == user
    assert not Label.objects.filter(labeler=researcher).exists()


def test_duplicate_samples_within_a_line_stay_distinct(project):
    comparisons_import(project=project, source=_jsonl({"query": "q", "sample0": "same", "sample1": "same",
                                                       "sample2": "x", "sample3": "same", "best": 0}))
    assert ComparisonSample.objects.values("sample").distinct().count() == 4


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_line(0), {k: v for k, v in _line(1).items() if k != "sample3"}], "line 2: the line has 3 samples"),
        ([_line(0), {**{k: v for k, v in _line(1).items() if k != "sample3"}, "sample4": "x"}], "line 2: missing key 'sample3'"),
        ([_line(0), {k: v for k, v in _line(1).items() if k != "query"}], "line 2: missing key 'query'"),
        ([_line(0, best=4)], "line 1: 'best' must be an integer from 0 to 3"),
        ([_line(0, best="1")], "line 1: 'best' must be an integer"),
        ([_line(0, best=True)], "line 1: 'best' must be an integer"),
        ([_line(0), {**_line(1), "sample2": 7}], "line 2: 'sample2' must be a string or a list"),
        ([_line(0), {**_line(1), "sample2": [1, 2]}], "line 2: 'sample2' is a list of token ids; pass a tokenizer"),
        ([_line(0, labeler="bad name!")], "line 1: labeler name 'bad name!' is not a valid user name"),
    ],
)
def test_2019_bad_line_is_named_and_nothing_is_written(project, rows, message):
    before = _counts()
    users = get_user_model().objects.count()
    with pytest.raises(InvalidInput, match=re.escape(message)):
        comparisons_import(project=project, source=_jsonl(*rows))
    assert _counts() == before
    assert get_user_model().objects.count() == users


def test_2019_file_k_must_match_project_k():
    project = ProjectFactory(k=2)
    with pytest.raises(InvalidInput, match="line 1: the line has 4 samples .* has K=2"):
        comparisons_import(project=project, source=(FIXTURES / "comparisons_2019_k4.jsonl").read_bytes(),
                           tokenizer=tokenizer_load("bytes"))
    assert Comparison.objects.count() == 0


def test_byte_tokenizer_rejects_ids_over_255(project):
    with pytest.raises(InvalidInput, match="line 1: 'query': token id 300 is not a byte"):
        comparisons_import(project=project, source=_jsonl({**_line(0), "query": [65, 300]}), tokenizer=BytesDecoder())


def test_pad_ids_are_stripped_before_decoding(project):
    comparisons_import(project=project, source=_jsonl({**_line(0), "query": [72, 105, 9, 9]}),
                       tokenizer=BytesDecoder(), pad_id=9)
    assert Query.objects.get().context == "Hi"


@pytest.mark.slow  # imports transformers
def test_local_tokenizer_folder_is_loaded_without_network(project, tmp_path):
    """A Hugging Face tokenizer saved in a folder decodes ids; nothing is fetched from a hub."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "again": 3}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path)
    decoder = tokenizer_load(str(tmp_path))
    comparisons_import(project=project, source=_jsonl({**_line(0), "query": [1, 2, 3]}), tokenizer=decoder)
    assert Query.objects.get().context == "hello world again"
    with pytest.raises(InvalidInput, match="outside the tokenizer's vocabulary"):
        comparisons_import(project=project, source=_jsonl({**_line(1), "query": [1, 99]}), tokenizer=decoder)


def test_tokenizer_outside_allowed_root_or_missing_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="folder under"):
        tokenizer_load("/etc", allowed_root=tmp_path)
    with pytest.raises(InvalidInput, match="neither"):
        tokenizer_load(str(tmp_path / "nope"))


# ---------------------------------------------------------------- comparisons, 2020 layout


def test_2020_import_groups_workers_and_reuses_posts():
    project = ProjectFactory(k=2, labels_per_comparison=1)
    result = comparisons_import(project=project, source=(FIXTURES / "comparisons_2020.jsonl").read_bytes())
    assert (result.queries_created, result.comparisons_created, result.labels_created, result.labelers_created) == (2, 2, 3, 2)
    post = Query.objects.get(external_id="t3_abc")
    assert post.context == ("SUBREDDIT: r/relationships\n\nTITLE: Should I move?\n\nPOST: I got a job offer in another "
                            "city.\n\nTL;DR:")  # 2020's query format, the cue kept
    pair = Comparison.objects.get(query=post)
    assert (pair.labels_wanted, pair.label_count, pair.open_slots, pair.batch) == (2, 2, 0, "batch9")
    assert sorted(pair.labels.values_list("labeler__username", "chosen_index")) == [("w1", 0), ("w2", 1)]
    assert [e.sample.source for e in pair.entries.select_related("sample")] == ["sup2", "ref"]
    cnn = Query.objects.get(external_id="cnn_1")
    assert (cnn.context, cnn.split) == ("Article:\nMarkets rose today.\n\nTL;DR:\n", "test")  # valid2 → test

    # A later batch on the same post reuses its query and samples.
    again = comparisons_import(project=project, source=_jsonl({
        "info": {"id": "t3_abc", "post": "ignored"}, "summaries": [{"text": " Job offer, move?", "policy": "sup2"},
                                                                   {"text": " New one.", "policy": "ppo"}],
        "choice": 1, "worker": "w3"}))
    assert (again.queries_created, again.samples_created) == (0, 1)


def test_2020_layout_needs_a_k2_project(project):
    with pytest.raises(InvalidInput, match="2020 layout compares 2 summaries; .* has K=4"):
        comparisons_import(project=project, source=(FIXTURES / "comparisons_2020.jsonl").read_bytes())
    assert Comparison.objects.count() == 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"summaries": [{"text": "a", "policy": "p"}, {"text": "b", "policy": "p"}], "choice": 0}, "line 2: missing key 'info'"),
        ({"info": {"id": "x", "post": "p"}, "summaries": [{"text": "a", "policy": "p"}], "choice": 0}, "line 2: 'summaries' has 1 entries"),
        ({"info": {"id": "x", "post": "p"}, "summaries": [{"text": "a"}, {"text": "b"}], "choice": 2}, "line 2: 'choice' must be an integer from 0 to 1"),
        ({"info": {"post": "p"}, "summaries": [{"text": "a"}, {"text": "b"}], "choice": 0}, "line 2: missing key 'id'"),
    ],
)
def test_2020_bad_line_is_named_and_nothing_is_written(row, message):
    project = ProjectFactory(k=2)
    good = {"info": {"id": "ok", "post": "p"}, "summaries": [{"text": "a", "policy": "p"}, {"text": "b", "policy": "q"}],
            "choice": 0, "worker": "w1"}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        comparisons_import(project=project, source=_jsonl(good, row), layout="2020")
    assert _counts() == (0, 0, 0, 0, 0, 0)
    assert not get_user_model().objects.filter(username="w1").exists()


# ---------------------------------------------------------------- commands


def test_import_commands(project, capsys):
    call_command("import_queries", project.slug, str(FIXTURES / "queries.jsonl"))
    call_command("import_comparisons", project.slug, str(FIXTURES / "comparisons_2019_k4.jsonl"), "--tokenizer", "bytes",
                 "--batch", "legacy")
    out = capsys.readouterr().out
    assert "3 queries, 3 samples" in out and "3 comparisons, 2 labels" in out
    assert set(Comparison.objects.values_list("batch", flat=True)) == {"legacy"}


def test_import_command_error_names_the_line(project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_jsonl(_line(0)) + b"{oops\n")
    with pytest.raises(CommandError, match="line 2: invalid JSON"):
        call_command("import_comparisons", project.slug, str(bad))
    assert Comparison.objects.count() == 0


def test_large_import_crosses_insert_batches(project, django_assert_max_num_queries):
    """2,500 labeled lines import in bounded statements (batched INSERTs), not one query per line."""
    rows = [_line(i, best=i % 4, labeler=f"l{i % 3}") for i in range(2500)]
    # SQLite caps the variables of one statement, so Django splits its INSERTs smaller there.
    budget = 60 if connection.vendor == "postgresql" else 250
    with django_assert_max_num_queries(budget):
        result = comparisons_import(project=project, source=_jsonl(*rows))
    assert (result.comparisons_created, result.labels_created, result.samples_created) == (2500, 2500, 10000)
    assert Label.objects.filter(comparison__query__context="query 2499").get().chosen_index == 2499 % 4
    assert ComparisonSample.objects.count() == 10000


@pytest.mark.parametrize("payload", [
    b'{"context": "ok"}\n{"context": "a\\u0000b"}\n',
    b'{"context": "ok"}\n{"context": "a", "samples": [{"text": "x\\u0000"}]}\n',
    b'{"context": "ok"}\n{"context": "a", "samples": [{"text": "x", "generation_params": {"\\u0000": 1}}]}\n',
    b'{"context": "ok"}\n{"context": "\\ud800"}\n',
    b'{"context": "ok"}\n{"context": "a", "samples": [{"text": "x", "generation_params": ' + b"[" * 40 + b"]" * 40 + b"}]}\n",
    b'{"context": "ok"}\n{"context": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
], ids=["nul-text", "nul-sample", "nul-json-key", "lone-surrogate", "deep-params", "deeper-than-the-parser"])
def test_text_the_database_cannot_store_is_a_400_naming_the_line(project, payload):
    """NUL characters, unpaired surrogates and deep nesting would fail at INSERT (a 500); they are refused first."""
    with pytest.raises(InvalidInput, match=r"^line 2: "):
        queries_import(project=project, source=payload)
    assert Query.objects.count() == 0


def test_byte_tokens_decoding_to_nul_are_refused(project):
    row = {"query": [104, 0, 105], "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d", "best": 1}
    with pytest.raises(InvalidInput, match=r"line 1: 'query' decodes to a NUL"):
        comparisons_import(project=project, source=(json.dumps(row) + "\n").encode(), layout="2019",
                           tokenizer=tokenizer_load("bytes"))
    assert Query.objects.count() == 0


# ---------------------------------------------------------------- whose accounts, import records


def test_a_line_naming_an_existing_contractor_is_refused_with_its_lines_and_nothing_is_written(project, contractor):
    """A real contractor's account would get 0 ms labels (their too-fast detector flags them): refused."""
    rows = [_line(0, best=0, labeler="newbie"), _line(1, best=1, labeler="contractor1"), _line(2, best=2),
            _line(3, best=3, labeler="contractor1")]
    before, users = _counts(), get_user_model().objects.count()
    with pytest.raises(ExistingAccounts, match=re.escape("'contractor1' (contractor) on line 2, line 4")) as error:
        comparisons_import(project=project, source=_jsonl(*rows))
    assert error.value.accounts == {"contractor1": ["line 2", "line 4"]}
    assert error.value.field == "labelers_existing"
    assert _counts() == before and get_user_model().objects.count() == users and Import.objects.count() == 0


@pytest.mark.parametrize("who", ["admin_user", "researcher"])
def test_calibration_answers_under_an_admin_or_researcher_need_listing(request, project, who):
    user = request.getfixturevalue(who)
    with pytest.raises(ExistingAccounts, match=re.escape(f"{user.username!r} ({user_role(user)}) on line 1")):
        comparisons_import(project=project, source=_jsonl(_line(0, best=0, labeler=user.username)), is_calibration=True)
    assert Label.objects.count() == 0
    result = comparisons_import(project=project, source=_jsonl(_line(0, best=0, labeler=user.username)),
                                is_calibration=True, labelers_existing=[user.username])
    assert result.accounts_existing == [user.username] and result.accounts_created == []
    assert Label.objects.get().labeler == user


def test_listed_existing_accounts_are_written_under_and_the_labels_record_the_import(project, contractor, researcher):
    rows = [_line(0, best=0, labeler="newbie"), _line(1, best=1, labeler="contractor1")]
    data = _jsonl(*rows)
    result = comparisons_import(project=project, source=data, name="batch.jsonl", batch="b7",
                                labelers_existing=["contractor1", "researcher1"], imported_by=researcher)
    assert (result.accounts_created, result.accounts_existing, result.accounts_reused) == (
        ["newbie"], ["contractor1"], [])
    record = Import.objects.get()
    assert result.import_id == record.id and not result.previously_imported
    assert (record.project, record.kind, record.layout, record.file_name, record.imported_by, record.batch) == (
        project, "comparisons", "2019", "batch.jsonl", researcher, "b7")
    assert (record.sha256, record.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (record.lines, record.comparisons_created, record.labels_created, record.queries_created) == (2, 2, 2, 2)
    assert [u.username for u in record.accounts_created.all()] == ["newbie"]
    assert [u.username for u in record.accounts_existing.all()] == ["contractor1"]  # researcher1 listed, not used
    assert set(Label.objects.values_list("source_import", flat=True)) == {record.id}
    assert set(Comparison.objects.values_list("source_import", flat=True)) == {record.id}
    assert Label.objects.get(labeler=contractor).duration_ms == 0


def test_a_listed_name_without_an_account_is_an_error(project):
    with pytest.raises(InvalidInput, match="labelers_existing: no account named 'ghost'") as error:
        comparisons_import(project=project, source=_jsonl(_line(0, best=0)), labelers_existing=["ghost"])
    assert error.value.field == "labelers_existing"
    with pytest.raises(InvalidInput, match="'bad name' is not a valid user name"):
        comparisons_import(project=project, source=_jsonl(_line(0, best=0)), labelers_existing=["bad name"])
    assert _counts() == (0, 0, 0, 0, 0, 0) and Import.objects.count() == 0


def test_accounts_an_earlier_import_of_the_project_created_are_reused_without_listing(project):
    """Import accounts (created by an import of this project, still no login) may take more imported labels;
    the same name in another project, or once the account can log in, is a person's: listed or refused."""
    first = comparisons_import(project=project, source=_jsonl(_line(0, best=0, labeler="w1"), _line(1, best=1)))
    assert first.accounts_created == ["imported", "w1"]
    again = comparisons_import(project=project, source=_jsonl(_line(2, best=2, labeler="w1"), _line(3, best=3)))
    assert (again.accounts_created, again.accounts_reused, again.accounts_existing) == ([], ["imported", "w1"], [])
    assert Label.objects.filter(labeler__username="w1").count() == 2

    with pytest.raises(ExistingAccounts, match="'w1'"):
        comparisons_import(project=ProjectFactory(k=4), source=_jsonl(_line(0, best=0, labeler="w1")))
    w1 = get_user_model().objects.get(username="w1")
    w1.set_password("now-a-person-123")
    w1.save()
    with pytest.raises(ExistingAccounts, match="'w1'"):
        comparisons_import(project=project, source=_jsonl(_line(4, best=0, labeler="w1")))


def test_a_simulated_labelers_account_is_not_an_import_account(project):
    """It cannot log in either, but its labels are a scorer's: writing under it needs listing."""
    (simulated,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("length", 1)])
    name = simulated.user.username
    with pytest.raises(ExistingAccounts, match=re.escape(f"{name!r}")):
        comparisons_import(project=project, source=_jsonl(_line(0, best=0, labeler=name)))


def test_the_same_content_imported_again_says_so(project):
    data = _jsonl(_line(0, best=0))
    first = comparisons_import(project=project, source=data)
    again = comparisons_import(project=project, source=data)  # not refused: the researcher's page asks first
    assert (first.previously_imported, again.previously_imported) == (False, True)
    assert again.previous_import_ids == [first.import_id] and again.sha256 == first.sha256
    assert not comparisons_import(project=ProjectFactory(k=4), source=data,
                                  labelers_existing=["imported"]).previously_imported


def test_queries_imports_are_recorded(project, researcher):
    result = queries_import(project=project, source=(FIXTURES / "queries.jsonl").read_bytes(), name="q.jsonl",
                            imported_by=researcher)
    record = Import.objects.get(id=result.import_id)
    assert (record.kind, record.file_name, record.imported_by, record.lines, record.queries_created) == (
        "queries", "q.jsonl", researcher, 3, 3)


def test_2020_queries_keep_the_tldr_cue_once_through_an_export_and_a_new_import():
    from labeling.selectors.exports import labels_export_jsonl

    project = ProjectFactory(k=2)
    comparisons_import(project=project, source=(FIXTURES / "comparisons_2020.jsonl").read_bytes())
    exported = "".join(labels_export_jsonl(project=project, layout="2020")).encode()
    again = ProjectFactory(k=2)
    comparisons_import(project=again, source=exported, labelers_existing=["w1", "w2"])
    contexts = sorted(Query.objects.filter(project=again).values_list("context", flat=True))
    assert contexts == sorted(Query.objects.filter(project=project).values_list("context", flat=True))
    assert all(context.count("TL;DR:") == 1 for context in contexts)
