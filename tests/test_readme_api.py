"""README.md's "## API" section: every curl example names a real endpoint, with a method, query
parameters and a JSON body that endpoint takes, so the section cannot rot silently."""
import json
import re
import shlex
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.urls import resolve

README = Path(__file__).resolve().parents[1] / "README.md"

EXPECTED = {"api-comparisons-import", "api-queries-import", "api-labels-export", "api-assignment-next",
            "api-label-create"}


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def _curls() -> list[list[str]]:
    """The section's curl commands, each as its argument list (continued lines joined)."""
    blocks = re.findall(r"^```\n(.*?)^```", _section(README.read_text(), "## API"), flags=re.S | re.M)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in commands if line.startswith("curl ")]


def _example(args: list[str]) -> dict:
    """Method, path, query and JSON body of one curl command (curl's rules: -F or -d mean POST)."""
    options = dict(zip(args, args[1:]))
    headers = [value for flag, value in zip(args, args[1:]) if flag == "-H"]
    [url] = [a for a in args if a.startswith("http")]
    parts = urlsplit(url)
    posts = "-F" in args or "-d" in args
    return {
        "method": options.get("-X", "POST" if posts else "GET"), "path": parts.path,
        "query": parse_qs(parts.query), "body": json.loads(options["-d"]) if "-d" in args else None,
        "token": "Authorization: Token $TOKEN" in headers,
    }


def test_the_section_has_one_curl_example_per_endpoint_each_resolving_to_it():
    names = [resolve(_example(args)["path"]).url_name for args in _curls()]
    assert sorted(names) == sorted(EXPECTED)


def test_each_example_uses_a_method_the_endpoint_has_and_sends_the_token():
    examples = [_example(args) for args in _curls()]
    has_method = [hasattr(resolve(e["path"]).func.view_class, e["method"].lower()) for e in examples]
    assert has_method == [True] * len(examples), examples
    assert [e["token"] for e in examples] == [True] * len(examples)


def _params(path: str) -> set[str]:
    serializer = getattr(resolve(path).func.view_class, "ParamsSerializer", None)
    return set(serializer().fields) if serializer else set()


def test_query_parameters_and_json_bodies_are_the_endpoints_own():
    examples = [_example(args) for args in _curls()]
    unknown = [(e["path"], sorted(set(e["query"]) - _params(e["path"]))) for e in examples]
    assert unknown == [(e["path"], []) for e in examples]
    [label] = [e for e in examples if e["body"] is not None]
    serializer = resolve(label["path"]).func.view_class.InputSerializer(data=label["body"])
    assert serializer.is_valid(), serializer.errors
