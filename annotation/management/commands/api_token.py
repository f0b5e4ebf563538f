"""``manage.py api_token create USER [--name N]`` (prints the secret once), ``list USER``, ``revoke USER ID``."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.api.models import ApiToken
from annotation.errors import ApplicationError
from annotation.selectors import NotFound
from annotation.services.api_tokens import token_create, token_revoke


class Command(BaseCommand):
    help = "Create, list or revoke a researcher's REST API tokens."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["create", "list", "revoke"])
        parser.add_argument("username")
        parser.add_argument("token_id", nargs="?", type=int, help="the token to revoke (see list)")
        parser.add_argument("--name", default="", help="a name to tell the token apart")

    def handle(self, *args, verb: str, username: str, token_id: int | None, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            if verb == "create":
                token, secret = token_create(user=user, name=name)
                self.stdout.write(secret)
            elif verb == "revoke":
                if token_id is None:
                    raise CommandError("give the id of the token to revoke (manage.py api_token list USER)")
                token_revoke(user=user, pk=token_id)
                self.stdout.write(f"token {token_id} revoked")
            else:
                for token in ApiToken.objects.filter(user=user):
                    state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                    self.stdout.write(f"{token.pk}\t{token.prefix}…\t{token.name}\t{state}")
        except (ApplicationError, NotFound) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
