"""Deployment settings and the embedded demo."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from labeling.services.demo import DEMO_LOGINS, demo_seed
from labeling.models import Comparison, Project

ROOT = Path(__file__).resolve().parents[2]


PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "x" * 64 + "-a-real-looking-random-secret-0123456789",
    "ALLOWED_HOSTS": "labels.example.org",
    "DATABASE_URL": "postgres://rlhf:pw@127.0.0.1:1/never_opened",  # `check` opens no connection
    "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",  # nor to the broker
    "RLHF_SKIP_BOOTSTRAP": "1",
}


def _manage_with_production_settings(*args: str, unset: tuple[str, ...] = (), **overrides: str):
    """`manage.py *args` in a subprocess: settings load once per process, so this is how they are tried."""
    dropped = {"DJANGO_ALLOW_ASYNC_UNSAFE", *unset}  # the first is set by the browser tests
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({k: v for k, v in PRODUCTION_ENV.items() if k not in unset}, **overrides)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_settings_pass_check_deploy():
    """`check --deploy --fail-level WARNING` passes with production settings and env secrets."""
    result = _manage_with_production_settings("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_secret_key():
    result = _manage_with_production_settings("check", unset=("SECRET_KEY",))
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_database_url():
    """No silent fall back to the demo's SQLite file (which would also pass `check --deploy`)."""
    result = _manage_with_production_settings("check", "--deploy", unset=("DATABASE_URL",))
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set the DATABASE_URL environment variable" in result.stderr, result.stderr


def test_production_refuses_to_start_without_a_broker():
    """No silent fall back to the demo's filesystem broker, which workers on other hosts never see."""
    result = _manage_with_production_settings("check", unset=("CELERY_BROKER_URL",))
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set the CELERY_BROKER_URL environment variable" in result.stderr, result.stderr


def test_production_refuses_a_sqlite_database():
    result = _manage_with_production_settings("check", DATABASE_URL="sqlite:////tmp/never-opened.sqlite3")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL names a SQLite database" in result.stderr, result.stderr


@pytest.mark.django_db
def test_responses_carry_a_strict_csp(client):
    response = client.get(reverse("login"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


@pytest.mark.django_db
def test_login_is_locked_after_repeated_failures(client, contractor):
    """django-axes locks a (username, address) pair after 5 failures; the right password then fails too."""
    url = reverse("login")
    for _ in range(5):
        client.post(url, {"username": "contractor1", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    locked = client.post(url, {"username": "contractor1", "password": "pw-for-tests-123"}, REMOTE_ADDR="10.0.0.9")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    elsewhere = client.post(url, {"username": "contractor1", "password": "pw-for-tests-123"}, REMOTE_ADDR="10.0.0.10")
    assert elsewhere.status_code == 302  # other address: not locked


@pytest.mark.django_db
def test_demo_seed_is_idempotent_and_big_enough(django_user_model):
    demo_seed()
    demo_seed()
    assert Project.objects.count() == 2
    assert Comparison.objects.filter(project__slug="positive-continuations").count() >= 50
    for login in DEMO_LOGINS:
        assert django_user_model.objects.get(username=login.username).check_password(login.password)


@pytest.mark.django_db
def test_demo_simulated_labelers_label_so_a_round_can_start():
    from labeling.services.demo import demo_autolabel
    from labeling.models import Label

    demo_seed()
    project = Project.objects.get(slug="positive-continuations")
    assert demo_autolabel(project=project, n=10) == 10
    labels = Label.objects.filter(labeler__simulated_labeler__kind="sentiment", comparison__project=project,
                                  comparison__is_calibration=False)  # the seed answered the calibration slice
    assert labels.count() == 10 and all(label.instructions is not None for label in labels)
