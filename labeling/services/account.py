"""A user's REST API token (DRF's authtoken: one token a user, sent as `Authorization: Token <key>`).

Made on the account page or by `manage.py create_api_token`; the token acts with its user's role.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from labeling.errors import Conflict, InvalidInput


def token_create(*, user, replace: bool = False) -> Token:
    """A new token for an active user. If the user has one, it is replaced when `replace` (the old
    key stops working at once) and refused (Conflict) otherwise, so that a second click or a second
    tab never swaps a key out from under a script without being asked to."""
    if not user.is_active:
        raise InvalidInput(f"User {user.username!r} is inactive.", field="user")
    with transaction.atomic():
        # Serialise per user: two concurrent creates would both pass the check and collide on the one-to-one.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        existing = Token.objects.filter(user=user)
        if existing.exists():
            if not replace:
                raise Conflict("You already have a token: replace it to get a new key.", field="token")
            existing.delete()
        return Token.objects.create(user=user)


def token_revoke(*, user) -> bool:
    """Delete the user's token (its key stops working at once); False when there was none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0
