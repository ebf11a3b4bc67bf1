#!/usr/bin/env python3
"""Django's command-line utility.

Run with any Python 3.11: the first call builds `.venv` from requirements.txt and re-runs
itself there, so `python3 manage.py demo` works on a fresh clone (see config/bootstrap.py).
"""
import importlib.util
import os
import sys
from pathlib import Path


def main() -> None:
    # Loaded by path: importing the `config` package would import Celery before it is installed.
    spec = importlib.util.spec_from_file_location("bootstrap", Path(__file__).parent / "config" / "bootstrap.py")
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    bootstrap.ensure_venv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
