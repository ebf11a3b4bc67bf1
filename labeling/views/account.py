"""The account page, for every logged-in user: their REST API token, created, replaced or revoked.

A new key is shown once, on the page the create redirects to (kept in the session for that one
page view, never in the URL); afterwards only its first characters and its date."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from labeling import services
from labeling.errors import LabelingError

_NEW_KEY = "account_new_token_key"
KEY_PREFIX_CHARS = 4


def _page(request: HttpRequest, *, new_key: str | None = None, error: str | None = None, status: int = 200):
    token = Token.objects.filter(user=request.user).first()
    shown_key = new_key if token is not None and new_key == token.key else None
    return render(request, "labeling/account.html", {
        "token": token, "new_key": shown_key, "key_prefix": token.key[:KEY_PREFIX_CHARS] if token else "",
        "error": error,
    }, status=status)


@never_cache
@require_GET
@login_required
def labeling_account(request: HttpRequest) -> HttpResponse:
    return _page(request, new_key=request.session.pop(_NEW_KEY, None))


@never_cache
@require_POST
@login_required
def labeling_account_token_create(request: HttpRequest) -> HttpResponse:
    """Create the token (`replace=1` replaces the one there is); the key is shown on the next page only."""
    try:
        token = services.token_create(user=request.user, replace=request.POST.get("replace") == "1")
    except LabelingError as error:
        return _page(request, error=error.message, status=error.status_code)
    request.session[_NEW_KEY] = token.key
    return redirect("labeling-account")


@never_cache
@require_POST
@login_required
def labeling_account_token_revoke(request: HttpRequest) -> HttpResponse:
    services.token_revoke(user=request.user)
    request.session.pop(_NEW_KEY, None)
    return redirect("labeling-account")
