"""`manage.py import_comparisons`: --labelers-existing, --imported-by, and what it prints about accounts."""
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import Import, Label

pytestmark = pytest.mark.django_db


def _file(tmp_path, *labelers):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}", **{f"sample{j}": f"s{i}.{j}" for j in range(4)}, "best": 1,
                                        "labeler": name}) + "\n" for i, name in enumerate(labelers)))
    return str(path)


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_comparisons", *args, stdout=out)
    return out.getvalue()


def test_an_existing_account_is_refused_unless_listed(project, contractor, researcher, tmp_path):
    path = _file(tmp_path, "fresh", "contractor1")
    refused = r"'contractor1' \(contractor\) on line 2\. \(--labelers-existing contractor1\)"
    with pytest.raises(CommandError, match=refused):
        _run(project.slug, path)
    assert Label.objects.count() == 0 and Import.objects.count() == 0

    out = _run(project.slug, path, "--labelers-existing", "contractor1", "--imported-by", "researcher1")
    assert "Accounts created: fresh." in out
    assert "Written under existing accounts (listed): contractor1." in out
    record = Import.objects.get()
    assert (record.imported_by, record.via) == (researcher, "command")
    assert set(Label.objects.values_list("source_import", flat=True)) == {record.id}

    again = _run(project.slug, path, "--labelers-existing", "contractor1,researcher1")
    assert "Written under earlier imports' accounts: fresh." in again
    assert f"imported into this project before (import {record.id})" in again


def test_unknown_imported_by_is_an_error(project, tmp_path):
    with pytest.raises(CommandError, match="--imported-by: no account named 'nobody'"):
        _run(project.slug, _file(tmp_path, "fresh"), "--imported-by", "nobody")
    assert Import.objects.count() == 0
