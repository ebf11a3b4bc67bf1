"""config/warmup.py: a web process compiles its templates at start; a failure there never stops it."""
import logging

import pytest

from django.conf import settings
from django.template import engines

from config.warmup import warm_up


def _templates() -> list[str]:
    folder = settings.TEMPLATES[0]["DIRS"][0]
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.html"))


def test_warm_up_compiles_every_project_template_into_the_cached_loader(monkeypatch):
    """After the warm-up, the dashboards' templates come from the cache: no file is read for them any more."""
    from django.template.loader import get_template
    from django.template.loaders.filesystem import Loader

    engine = engines["django"].engine
    engine.template_loaders[0].reset()
    assert warm_up() == len(_templates()) > 10

    def no_reads(self, origin):
        raise AssertionError(f"read {origin.name} again")

    monkeypatch.setattr(Loader, "get_contents", no_reads)
    for name in ("labeling/dashboard.html", "labeling/dashboard_labelers.html", "base.html"):
        assert get_template(name)
    engine.template_loaders[0].reset()  # the check itself can fail: without the cache, the file is read
    with pytest.raises(AssertionError, match="read labeling/dashboard.html again|read .*dashboard.html again"):
        get_template("labeling/dashboard.html")
    monkeypatch.undo()
    engine.template_loaders[0].reset()


def test_warm_up_can_be_turned_off(settings):
    settings.WARM_UP_ON_START = False
    assert warm_up() == 0


def test_a_broken_template_is_logged_not_raised(monkeypatch, caplog):
    import django.template.loader

    def broken(name, using=None):
        raise ValueError(f"cannot compile {name}")

    monkeypatch.setattr(django.template.loader, "get_template", broken)
    with caplog.at_level(logging.ERROR, logger="config.warmup"):
        assert warm_up() == 0
    assert "warm-up stopped" in caplog.text and "cannot compile" in caplog.text
