"""``manage.py register_dataset NAME --root DIR [--val DIR] [--class-metadata CSV]``: an image folder to study."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ApplicationError
from annotation.management.commands.register_model import owner_of
from annotation.services import registry


class Command(BaseCommand):
    help = "Register an ImageFolder tree (one folder per class): scanned once, never copied."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--root", required=True)
        parser.add_argument("--val", default="", help="validation folder with the same layout")
        parser.add_argument("--class-metadata", default="", help="CSV: plain or Salient ImageNet's class_metadata.csv")
        parser.add_argument("--owner", default=None, help="researcher user name; default: shared with all")
        parser.add_argument("--title", default="")

    def handle(self, *args, name, root, val, class_metadata, owner, title, **options):
        try:
            entry = registry.dataset_register(owner=owner_of(owner), name=name, root=root, val_root=val,
                                              class_metadata=class_metadata, title=title)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(
            f"dataset {entry.name!r}: {entry.num_classes} classes, {entry.n_images} images"
            + (f", {sum(entry.val_counts.values())} validation images" if entry.val_counts else "")))
        if entry.n_unreadable:
            self.stdout.write(self.style.WARNING(f"{entry.n_unreadable} unreadable or non-image files skipped, e.g. "
                                                 + ", ".join(entry.unreadable[:3])))
