"""Web processes never import torch or transformers (DESIGN.md): a web worker starts as gunicorn's does,
in a fresh interpreter, and neither library (nor any of its submodules) is loaded. Only the training
worker pays for them (hundreds of MB of RSS and seconds of start-up per web process otherwise)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What a server process does at start: settings and apps, the URLconf (every view module), the warm-up
# (every template), config.wsgi itself; then what its first enqueued task imports (the tasks modules,
# whose tasks import the training library lazily). The hook names the project lines that pulled each in.
CHILD = r"""
import builtins, json, os, sys, traceback

FORBIDDEN = ("torch", "transformers")
REPO = os.getcwd() + os.sep
first = {}
_import = builtins.__import__


def _watch(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0] if not level else ""
    if top in FORBIDDEN and top not in first and top not in sys.modules:
        stack = traceback.extract_stack()[:-1]
        first[top] = " <- ".join(f"{f.filename[len(REPO):]}:{f.lineno}" for f in reversed(stack)
                                 if f.filename.startswith(REPO) and ".venv" not in f.filename)
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _watch
import django

django.setup()
from django.urls import get_resolver

get_resolver().url_patterns
from config.warmup import warm_up

warm_up()
import config.wsgi  # noqa: F401
from config.celery import app

app.loader.import_default_modules()  # what enqueueing a task does first: every app's tasks module

loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"loaded": loaded, "first": first}))
"""


def test_a_web_process_imports_neither_torch_nor_transformers():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [], f"a web process imported {report['loaded'][:5]}; first via {report['first']}"
