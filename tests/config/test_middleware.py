"""config.middleware.CSPMiddleware: django-csp's headers, its policy strings built once."""
import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE, SELF
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.functional import empty

from config.middleware import CSPMiddleware

REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"], "report-uri": "/csp-report/"}}


def _both(path="/label/", *, nonce=False, **response_attrs):
    """The headers our middleware and django-csp's set on the same request and response."""
    out = []
    for middleware in (CSPMiddleware(lambda r: None), DjangoCSPMiddleware(lambda r: None)):
        request = RequestFactory().get(path)
        middleware.process_request(request)
        if nonce:
            str(request.csp_nonce)  # a template asked for a nonce
        response = HttpResponse("ok")
        for name, value in response_attrs.items():
            setattr(response, name, value)
        middleware.process_response(request, response)
        out.append({h: response.get(h) for h in (HEADER, HEADER_REPORT_ONLY)})
        if nonce:
            assert request._csp_nonce in response[HEADER]
    return out


def test_same_headers_as_django_csp(settings):
    ours, theirs = _both()
    assert ours == theirs and "script-src 'self'" in ours[HEADER] and ours[HEADER_REPORT_ONLY] is None
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = REPORT_ONLY  # a changed setting is seen at once
    ours, theirs = _both()
    assert ours == theirs and "report-uri /csp-report/" in ours[HEADER_REPORT_ONLY]


@pytest.mark.parametrize("attrs", [
    {"_csp_update": {"img-src": ["https://example.org"]}},
    {"_csp_replace": {"script-src": None}},
    {"_csp_exempt": True},
])
def test_per_response_policies_and_exemptions_as_django_csp(attrs):
    ours, theirs = _both(**attrs)
    assert ours == theirs


def test_nonce_and_excluded_prefixes_as_django_csp(settings):
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {**directives, "script-src": [SELF, NONCE]}}
    ours, theirs = _both(nonce=True)
    assert "'nonce-" in ours[HEADER] and ours[HEADER] != theirs[HEADER]  # each request its own nonce
    assert ours[HEADER].split("'nonce-")[0] == theirs[HEADER].split("'nonce-")[0]
    settings.CONTENT_SECURITY_POLICY = {**settings.CONTENT_SECURITY_POLICY, "EXCLUDE_URL_PREFIXES": ["/api/"]}
    assert _both("/api/x/") == [{HEADER: None, HEADER_REPORT_ONLY: None}] * 2
    ours, theirs = _both("/label/")
    assert ours == theirs and ours[HEADER]


def test_nonce_after_the_header_is_an_error():
    middleware = CSPMiddleware(lambda r: None)
    request = RequestFactory().get("/")
    middleware.process_request(request)
    middleware.process_response(request, HttpResponse("ok"))
    with pytest.raises(Exception, match="csp_nonce"):
        str(request.csp_nonce)


def test_messages_made_on_first_use_and_kept_as_django_does(rf):
    """config.middleware.MessageMiddleware: an untouched storage is never built and sets nothing; a
    message added on one request is read on the next, as with Django's middleware."""
    from django.contrib import messages
    from django.contrib.sessions.middleware import SessionMiddleware

    from config.middleware import MessageMiddleware

    middleware = MessageMiddleware(lambda r: None)

    def request(cookies=None):
        req = rf.get("/")
        req.COOKIES.update(cookies or {})
        SessionMiddleware(lambda r: None).process_request(req)
        middleware.process_request(req)
        return req

    quiet = request()
    response = middleware.process_response(quiet, HttpResponse("ok"))
    assert quiet._messages._wrapped is empty and "messages" not in response.cookies  # never built, nothing set

    first = request()
    messages.info(first, "Run 12 stopped.")
    response = middleware.process_response(first, HttpResponse("ok"))
    assert "messages" in response.cookies
    second = request({"messages": response.cookies["messages"].value})
    assert [str(m) for m in messages.get_messages(second)] == ["Run 12 stopped."]
    response = middleware.process_response(second, HttpResponse("ok"))
    assert response.cookies["messages"].value == ""  # read, so cleared
