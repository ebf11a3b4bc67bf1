"""A newcomer's check of README's layout: every path it names exists, and each row of "Where a behaviour
lives" sends the reader to the file that defines the named function or class."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LAYOUT = README[README.index("## Layout\n"):README.index("## Configuration (environment)")]
BEHAVIOURS = LAYOUT[LAYOUT.index("Where a behaviour lives"):]
ROWS = [
    (cells[0], re.findall(r"`([^`]+)`", cells[1])[0], cells[2].strip("` "))
    for line in BEHAVIOURS.splitlines()
    if line.startswith("| ") and not line.startswith(("| behaviour", "| ---"))
    for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
]


def _defines(path: Path, name: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return True
    return False


def test_the_layout_names_only_paths_that_exist():
    named = {p for p in re.findall(r"`((?:config|labeling|training|tests|bench|templates|static)/[^`\s]*)`", LAYOUT)}
    assert len(named) > 20
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_the_grid_modules_exist():
    """Every module the grid table names exists in its layer package."""
    grid = LAYOUT[LAYOUT.index("| feature |"):LAYOUT.index("Beside the grid")]
    missing = []
    for line in [line for line in grid.splitlines()[2:] if line.startswith("| ")]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for layer, cell in zip(("services", "selectors", "views", "api"), cells[1:], strict=True):
            missing += [f"labeling/{layer}/{m}" for m in re.findall(r"`([^`]+)`", cell)
                        if not (ROOT / "labeling" / layer / m).exists()]
    assert missing == []


@pytest.mark.parametrize(("behaviour", "path", "name"), ROWS, ids=[row[0] for row in ROWS])
def test_each_behaviour_is_defined_where_the_readme_says(behaviour, path, name):
    assert len(ROWS) >= 5
    assert _defines(ROOT / path, name), f"README sends '{behaviour}' to {path}, which does not define {name}"
