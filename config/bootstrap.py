"""Create the project's virtual environment on first use and re-run the command inside it.

Standard library only: this runs before any dependency is installed. The venv is rebuilt
when the requirements files change (their hash is stored in the venv).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("RLHF_VENV", ROOT / ".venv"))
REQUIREMENTS = ROOT / "requirements-dev.txt"  # includes requirements.txt


def _requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-dev.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> None:
    """Make sure the command runs inside an up-to-date `.venv`; re-exec into it if needed."""
    if os.environ.get("RLHF_SKIP_BOOTSTRAP") == "1":
        return
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements.sha256"
    wanted = _requirements_hash()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"[bootstrap] installing dependencies into {VENV} (first run takes about a minute)", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    if not _in_venv():
        os.execv(str(python), [str(python), *sys.argv])
