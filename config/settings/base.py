"""Settings for every environment. Deploy-specific values come from the environment (config/env.py).

The defaults are the embedded stack that `python3 manage.py demo` runs: SQLite in WAL mode,
Celery over a filesystem broker under var/, artifacts under var/artifacts. Production sets
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis) and uses config.settings.production.
"""
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF

from config.env import BASE_DIR, env

VAR_DIR = Path(env("RLHF_VAR_DIR", default=str(BASE_DIR / "var")))

# ---------------------------------------------------------------- core
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-in-production-0123456789")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "labeling",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",  # Django's, its storage made on first use
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.CSPMiddleware",  # django-csp's, its policy built once
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "labeling.context_processors.roles",
            ],
        },
    },
]

# config/warmup.py: a web process compiles its templates and loads its URLconf at start, not in its first request.
WARM_UP_ON_START = env.bool("WARM_UP_ON_START", default=True)

# ---------------------------------------------------------------- database
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN, so
    # two label submits never deadlock upgrading a read lock (Django 5.1+ options).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------- auth
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # lockout per (username, address) before the password check
    "labeling.auth_backends.ModelBackendOneQuery",  # ModelBackend, with permissions read in one query
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# ---------------------------------------------------------------- i18n, static
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# ---------------------------------------------------------------- security headers
# Model output is untrusted: no inline script anywhere, so the CSP can forbid it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# ---------------------------------------------------------------- DRF
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"andon": "10/minute"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF labeling API",
    "DESCRIPTION": "Projects, comparisons, labels, imports and exports of the human-preference platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are for researchers and admins; token first, as the API (config/api_docs.py).
    "SERVE_PERMISSIONS": ["labeling.permissions.IsResearcher"],
    "SERVE_AUTHENTICATION": [
        "labeling.auth_backends.TokenAuthenticationWithPermissions",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# ---------------------------------------------------------------- labeling
LABELING_LEASE_MINUTES = env.int("LABELING_LEASE_MINUTES", default=15)
# On PostgreSQL, next and submit call the SQL functions in labeling/sql/ (one round trip
# each); off, they take the ORM path every other database takes (the tests run both).
LABELING_SQL_FUNCTIONS = env.bool("LABELING_SQL_FUNCTIONS", default=True)
# On PostgreSQL, the dashboards read a project's label columns with one binary COPY; off, through
# the ORM as on every other database (labeling/selectors/quality/columns.py; the tests run both).
DASHBOARD_PG_COPY = env.bool("DASHBOARD_PG_COPY", default=True)
# Snapshots of each project's label columns that every web process shares, so a process that has
# just started reads ~3 MB instead of every label row (checked against the database before use).
# Files under var/ by default; with several hosts, a Redis database of its own
# (DASHBOARD_CACHE_URL=redis://host:6379/2: clearing it flushes that database).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "dashboard": {**env.cache_url("DASHBOARD_CACHE_URL", default=f"filecache://{VAR_DIR / 'cache' / 'dashboard'}"),
                  "TIMEOUT": None},
}
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=20 * 1024 * 1024)
# The import page runs files of more records than this as a Celery task with a progress bar; the file the
# dry run checked waits under VAR_DIR/imports/ (shared by web and worker) and is removed after this long.
IMPORT_ASYNC_LINES = env.int("IMPORT_ASYNC_LINES", default=2000)
IMPORT_STASH_MAX_AGE_S = env.int("IMPORT_STASH_MAX_AGE_S", default=24 * 3600)
DATA_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A file past IMPORT_MAX_BYTES stops being stored while the body is read (labeling/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "labeling.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# ---------------------------------------------------------------- training artifacts
ARTIFACTS_DIR = Path(env("ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))

# ---------------------------------------------------------------- Celery
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # the 1 s default adds a second to every task
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"training.tasks.run_execute_task": {"queue": "training"}}
# Training workers run with --max-tasks-per-child 1 (a fresh process per run): see README.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# ---------------------------------------------------------------- training runs
TRAINING_LEASE_SECONDS = env.int("TRAINING_LEASE_SECONDS", default=120)
ANDON_ACK_DEADLINE_SECONDS = env.int("ANDON_ACK_DEADLINE_SECONDS", default=60)
TRAINING_REAP_INTERVAL_SECONDS = env.int("TRAINING_REAP_INTERVAL_SECONDS", default=30)
# The dashboards' shared snapshots of active projects' label columns, checked and rewritten when stale.
DASHBOARD_SNAPSHOT_INTERVAL_SECONDS = env.int("DASHBOARD_SNAPSHOT_INTERVAL_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "reap-runs": {"task": "training.tasks.runs_reap_task", "schedule": TRAINING_REAP_INTERVAL_SECONDS,
                  "options": {"queue": "default"}},
    "dashboard-snapshots": {"task": "labeling.tasks.dashboard_snapshots_refresh_task",
                            "schedule": DASHBOARD_SNAPSHOT_INTERVAL_SECONDS, "options": {"queue": "default"}},
}
TRAINING_DEFAULT_BASE_MODEL = env("TRAINING_DEFAULT_BASE_MODEL", default="tiny")
# A labeler may take back their last label for this long (labeling/services/labels.py, label_undo).
LABELING_UNDO_SECONDS = env.int("LABELING_UNDO_SECONDS", default=10)
# The GPUs a training worker has: a PPO run may ask for up to this many (`ppo.gpus`, ranks under torchrun).
TRAINING_WORKER_GPUS = env.int("TRAINING_WORKER_GPUS", default=1)
