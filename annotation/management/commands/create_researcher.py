"""``manage.py create_researcher NAME``: an account that may create and run studies."""
from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from annotation.services import researcher_create


class Command(BaseCommand):
    help = "Create (or add to the researchers group) a researcher account."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", help="default: asked for interactively")
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, password: str | None, email: str, **options):
        if password is None:
            password = getpass.getpass(f"Password for {username}: ")
        if len(password) < 8:
            raise CommandError("the password must have at least 8 characters")
        researcher_create(username=username, password=password, email=email)
        self.stdout.write(self.style.SUCCESS(f"researcher {username!r} is ready; sign in at /accounts/login/"))
