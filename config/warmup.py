"""Work a web process does once at start instead of in its first request: the URLconf and its views
imported, every project template compiled into the cached loader (with its tag libraries and the
template engine itself). On this project's 2-core machines that is ~50 ms of a first request.
config/wsgi.py and config/asgi.py call it unless WARM_UP_ON_START is off; a failure is logged, never
raised (the request that needs the broken part will say what is wrong)."""
from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def warm_up() -> int:
    """Compile the project's templates and load the URLconf; returns how many templates compiled."""
    if not getattr(settings, "WARM_UP_ON_START", True):
        return 0
    from django.template.loader import get_template
    from django.urls import get_resolver

    start = time.perf_counter()
    compiled = 0
    try:
        get_resolver().url_patterns  # noqa: B018 (imports every view module)
        for folder in settings.TEMPLATES[0]["DIRS"]:
            for path in sorted(folder.rglob("*.html")):
                get_template(str(path.relative_to(folder)))
                compiled += 1
    except Exception:
        logger.exception("warm-up stopped (the server still starts)")
    logger.debug("warm-up: %d templates in %.0f ms", compiled, (time.perf_counter() - start) * 1000)
    return compiled
