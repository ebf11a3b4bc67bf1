"""training/rlhf is a library: it must import nothing from Django, the web stack, or the apps."""

import ast
from pathlib import Path

RLHF_DIR = Path(__file__).resolve().parents[3] / "training" / "rlhf"
FORBIDDEN_ROOTS = {"django", "rest_framework", "celery", "labeling", "config"}


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            # Relative: level 1 stays in training.rlhf, level 2 climbs to training, and so on.
            package = ["training", "rlhf"][: max(2 - (node.level - 1), 0)]
            names.append(".".join(package + ([node.module] if node.module else [])) or "training")
    return names


def is_forbidden(module: str) -> bool:
    parts = module.split(".")
    if parts[0] in FORBIDDEN_ROOTS:
        return True
    return parts[0] == "training" and (len(parts) < 2 or parts[1] != "rlhf")


def test_rlhf_modules_import_no_django_or_app_code():
    files = sorted(RLHF_DIR.glob("*.py"))
    offenders = [
        f"{path.name}: {module}" for path in files for module in imported_modules(path) if is_forbidden(module)
    ]
    assert len(files) >= 8
    assert offenders == []


def test_the_checker_catches_forbidden_imports(tmp_path):
    """The walker itself must flag what the rule forbids, or the test above proves nothing."""
    assert all(
        map(
            is_forbidden,
            [
                "django.db",
                "rest_framework",
                "celery",
                "labeling.models",
                "config.settings",
                "training.models",
                "training.services.runs",
                "training",
            ],
        )
    )
    assert not any(map(is_forbidden, ["training.rlhf.losses", "torch", "transformers", "configparser"]))
    module = tmp_path / "sneaky.py"
    module.write_text("import django.conf\nfrom .. import models\nfrom ..services import runs\nfrom . import losses\n")
    assert [m for m in imported_modules(module) if is_forbidden(m)] == ["django.conf", "training", "training.services"]
