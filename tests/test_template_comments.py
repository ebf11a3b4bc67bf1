"""Django's `{# … #}` comment ends at its line: one spread over lines is printed on the page as text (the run page
showed its polling note that way). Longer notes use {% comment %}."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_template_comment_spans_lines():
    unclosed = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"\{#(?!.*#\})", line):
                unclosed.append(f"{path.relative_to(ROOT)}:{number}")
    assert unclosed == []
