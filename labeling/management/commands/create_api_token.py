"""`manage.py create_api_token USER [--rotate]`: print the user's REST API token (created if missing).

Clients send it as `Authorization: Token <key>`. The token carries the user's role; --rotate
replaces a leaked one. Users make their own on the account page (/account/); both go through
labeling.services.account.
"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from labeling.errors import LabelingError
from labeling.services import token_create


class Command(BaseCommand):
    help = "Print USER's API token, creating it if needed (--rotate replaces an existing one)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Delete the existing token and issue a new one.")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        token = None if options["rotate"] else Token.objects.filter(user=user, user__is_active=True).first()
        if token is None:
            try:
                token = token_create(user=user, replace=True)
            except LabelingError as error:
                raise CommandError(error.message) from error
        self.stdout.write(token.key)
