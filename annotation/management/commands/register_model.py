"""``manage.py register_model NAME --arch resnet50 --checkpoint PATH``: a checkpoint studies can run on."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ApplicationError
from annotation.models import RegisteredModel
from annotation.services import registry


def owner_of(username: str | None):
    """The researcher ``username`` (None: a shared entry)."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    return user


class Command(BaseCommand):
    help = "Register a classifier checkpoint: it is loaded once and refused (nothing stored) if it does not load."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--arch", required=True, help="torchvision architecture name, e.g. resnet50")
        parser.add_argument("--checkpoint", required=True, help="local path or s3://bucket/key")
        parser.add_argument("--format", default="auto", choices=RegisteredModel.Format.values)
        parser.add_argument("--input-size", type=int, default=None)
        parser.add_argument("--mean", type=float, nargs=3, default=None)
        parser.add_argument("--std", type=float, nargs=3, default=None)
        parser.add_argument("--owner", default=None, help="researcher user name; default: shared with all")
        parser.add_argument("--title", default="")

    def handle(self, *args, name, arch, checkpoint, format, input_size, mean, std, owner, title, **options):
        try:
            entry = registry.model_register(owner=owner_of(owner), name=name, architecture=arch, checkpoint=checkpoint,
                                            format=format, input_size=input_size, mean=mean, std=std, title=title)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        conv = "×".join(map(str, entry.conv_map)) if entry.conv_map else "none"
        self.stdout.write(self.style.SUCCESS(
            f"model {entry.name!r}: {entry.architecture}, {entry.num_classes} classes, features {entry.feature_dim}, "
            f"last conv map {conv}, input {entry.input_size} px, sha256 {entry.sha256[:12]}"))
