"""Test settings: real PostgreSQL and Redis where the machine runs them, else SQLite and memory.

`python3 manage.py runtests` starts local PostgreSQL/Redis if they are installed but stopped,
and exports DATABASE_URL / CELERY_BROKER_URL; a bare `pytest` probes the standard ports here.
"""
import os
import tempfile
from pathlib import Path

from config.devservices import port_open

from .base import *  # noqa: F403
from .base import DATABASES, env


if "DATABASE_URL" not in os.environ and port_open(5432):
    DATABASES = {"default": env.db_url_config("postgres://postgres@127.0.0.1:5432/rlhf")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"rlhf-test-{os.getpid()}.sqlite3")}

if "CELERY_BROKER_URL" not in os.environ:
    CELERY_BROKER_URL = "redis://127.0.0.1:6379/15" if port_open(6379) else "memory://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
# Per test process; tests/conftest.py clears it around every test (tests of the file and Redis
# stores override it).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "dashboard": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "dashboard", "TIMEOUT": None},
}
CELERY_TASK_ALWAYS_EAGER = True  # tests that need a real worker start one themselves
CELERY_TASK_EAGER_PROPAGATES = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ARTIFACTS_DIR = Path(env("ARTIFACTS_DIR", default=os.path.join(tempfile.gettempdir(), "rlhf-test-artifacts")))
STATIC_ROOT = Path(tempfile.gettempdir()) / "rlhf-test-static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every request when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
