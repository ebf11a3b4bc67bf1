"""Middleware of our own, each a cheaper drop-in for a library's on the labeling API's hot path.

CSPMiddleware: django-csp 4 builds the Content-Security-Policy header from the settings on every response, which
was a fifth of the middleware time of the labeling API's two hot endpoints. Our policy is the same
for every response: no view sets its own (`csp_update` and friends) and no template uses a nonce.
So the strings are built once per settings and reused; a response that does carry its own policy,
a request that used a nonce, and Django's DEBUG error pages still take django-csp's own path, and
the cache is dropped whenever a setting changes (tests override settings).

MessageMiddleware: Django's, with the message storage made on first use. Building it (the cookie
storage's signer) cost about a fifth of a millisecond on every request, and API requests never
show a message; an untouched storage has nothing to save, so skipping its update changes nothing.
"""
from __future__ import annotations

from functools import cache

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.messages.storage import default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import SimpleLazyObject, empty

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy

_OWN_POLICY = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")
_HEADERS = (  # header, report only, the response's exemption flag, the setting
    (HEADER, False, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
    (HEADER_REPORT_ONLY, True, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
)


@cache
def _policy(report_only: bool) -> str:
    return build_policy(report_only=report_only)


@cache
def _excluded_prefixes(setting: str) -> tuple[str, ...]:
    return tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ())


@receiver(setting_changed)
def _settings_changed(**kwargs) -> None:
    _policy.cache_clear()
    _excluded_prefixes.cache_clear()


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(self, request, response):
        if (getattr(request, "_csp_nonce", None) is not None
                or any(hasattr(response, name) for name in _OWN_POLICY)
                or (settings.DEBUG and response.status_code in (404, 500))):
            return super().process_response(request, response)
        for header, report_only, exempt, setting in _HEADERS:
            policy = _policy(report_only)
            if (policy and header not in response and getattr(response, exempt, False) is False
                    and not request.path_info.startswith(_excluded_prefixes(setting))):
                response[header] = policy
        # As django-csp: once the header is written, asking for a nonce is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response


class MessageMiddleware(DjangoMessageMiddleware):
    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response  # never used: nothing queued, nothing read
        return super().process_response(request, response)
