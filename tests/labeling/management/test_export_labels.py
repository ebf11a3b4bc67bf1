"""`manage.py export_labels` takes the export page's filters as flags: split, a date range, instructions
version, labeler kind and calibration; a malformed or impossible filter is refused with its reason."""
import json
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from labeling.models import Import, Instructions, Label, Query, SimulatedLabeler
from labeling.roles import CONTRACTOR
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def labels(contractor, researcher):
    """One label of each kind: {name: comparison id}."""
    project = ProjectFactory(k=2, slug="exp-cmd", calibration_share=0.0)
    v1, v2 = (Instructions.objects.create(project=project, version=v, body=f"v{v}") for v in (1, 2))
    simulated = UserFactory(username="sim-1", role=CONTRACTOR)
    SimulatedLabeler.objects.create(user=simulated, kind="random", temperature=1.0, seed=1)
    record = Import.objects.create(project=project, kind="comparisons", sha256="0" * 64)
    made = {
        "may1": make_label(make_comparison(project), contractor, chosen_index=0, instructions=v1),
        "may10": make_label(make_comparison(project), contractor, chosen_index=1, instructions=v2),
        "simulated": make_label(make_comparison(project), simulated, chosen_index=0),
        "imported": make_label(make_comparison(project), contractor, chosen_index=1, source_import=record),
        "calibration": make_label(make_comparison(project, is_calibration=True), researcher, chosen_index=0),
    }
    Query.objects.filter(comparisons__id=made["may10"].comparison_id).update(split=Query.Split.VALID)
    tz = timezone.get_default_timezone()
    for name, day in (("may1", 1), ("may10", 10)):
        Label.objects.filter(id=made[name].id).update(created_at=datetime(2024, 5, day, 12, tzinfo=tz))
    return {name: label.comparison_id for name, label in made.items()}


def _export(*flags) -> list[int]:
    out = StringIO()
    call_command("export_labels", "exp-cmd", *flags, stdout=out)
    return sorted(json.loads(line)["comparison_id"] for line in out.getvalue().splitlines())


def _ids(labels, *names) -> list[int]:
    return sorted(labels[name] for name in names)


def test_every_filter_flag_narrows_the_export(labels):
    assert _export() == _ids(labels, *labels)
    assert _export("--split", "valid") == _ids(labels, "may10")
    assert _export("--created-from", "2024-05-01", "--created-to", "2024-05-09") == _ids(labels, "may1")
    assert _export("--created-to", "2024-05-10") == _ids(labels, "may1", "may10")
    assert _export("--instructions-version", "2") == _ids(labels, "may10")
    assert _export("--labeler-kind", "imported") == _ids(labels, "imported")
    assert _export("--labeler-kind", "simulated") == _ids(labels, "simulated")
    assert _export("--labeler-kind", "people") == _ids(labels, "may1", "may10", "calibration")
    assert _export("--calibration", "only") == _ids(labels, "calibration")
    assert _export("--calibration", "exclude", "--labeler-kind", "people") == _ids(labels, "may1", "may10")


def test_filters_in_a_file_and_refusals(labels, tmp_path):
    target = tmp_path / "out.jsonl"
    err = StringIO()
    call_command("export_labels", "exp-cmd", "--layout", "pairs", "--calibration", "only", "-o", str(target),
                 stderr=err)
    assert len(target.read_text().splitlines()) == 1 and "1 lines written" in err.getvalue()
    with pytest.raises(CommandError, match="ends \\(2024-05-01\\) before it starts \\(2024-05-03\\)"):
        _export("--created-from", "2024-05-03", "--created-to", "2024-05-01")
    with pytest.raises(CommandError, match="no instructions version 7"):
        _export("--instructions-version", "7")
    with pytest.raises(CommandError, match="'May 1' is not a date"):
        _export("--created-from", "May 1")
    with pytest.raises(CommandError, match="invalid choice"):
        _export("--labeler-kind", "robots")
