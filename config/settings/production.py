"""Production: PostgreSQL and Redis from the environment, HTTPS only, secrets required.

`DJANGO_SETTINGS_MODULE=config.settings.production python manage.py check --deploy --fail-level WARNING`
passes once SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and CELERY_BROKER_URL are set.
"""
from django.core.exceptions import ImproperlyConfigured

from config.env import env

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, DATABASES

DEBUG = False
SECRET_KEY = env("SECRET_KEY")  # no default: refuse to start without one
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# base.py falls back to the demo's SQLite file; a deploy that forgot DATABASE_URL would start on an
# empty database of its own (and pass `check --deploy`), so production refuses it, and SQLite too.
if not env("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "Set the DATABASE_URL environment variable (postgres://user:password@host:5432/rlhf): "
        "production settings do not fall back to SQLite."
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    raise ImproperlyConfigured(
        "DATABASE_URL names a SQLite database: production runs on PostgreSQL (postgres://user:password@host:5432/rlhf)."
    )

# base.py falls back to a filesystem broker under var/, which only this host's processes read: a worker on a GPU
# node would never see a run, and the web node's tasks would wait for nobody. Production names a real broker.
if CELERY_BROKER_URL.startswith("filesystem://"):
    raise ImproperlyConfigured(
        "Set the CELERY_BROKER_URL environment variable (redis://host:6379/0 or amqp://user:password@host//): "
        "production settings do not fall back to the filesystem broker, which workers on other hosts never see."
    )

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
