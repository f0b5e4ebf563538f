"""People: researcher accounts, worker sign-up and invitations."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from annotation.errors import Conflict, Forbidden
from annotation.models import Invitation, Study, Worker
from annotation.roles import RESEARCHERS


def researcher_create(*, username: str, password: str, email: str = ""):
    """A user in the ``researchers`` group (researchers may create studies)."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if created or not user.has_usable_password():
            user.set_password(password)
            user.save()
        group, _ = Group.objects.get_or_create(name=RESEARCHERS)
        user.groups.add(group)
    return user


def worker_signup(*, username: str, password: str | None, invitation: Invitation | None = None) -> Worker:
    """Create an internal worker account; an invitation is used up by it. ``password`` None: an unusable one
    (no hash is computed), for a caller that sets the password of many accounts at once."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict(f"the user name {username!r} is taken")
        user = User.objects.create_user(username=username, password=password)
        worker = Worker.objects.create(user=user, backend=Worker.Backend.INTERNAL)
        if invitation is not None:
            used = Invitation.objects.filter(pk=invitation.pk, used_by__isnull=True).update(used_by=worker)
            if not used:
                raise Conflict("this invitation has already been used")
    return worker


def invitation_create(*, researcher, note: str = "", study: Study | None = None) -> Invitation:
    if study is not None and study.owner_id != researcher.pk:
        raise Forbidden("you can only invite workers to your own studies")
    return Invitation.objects.create(created_by=researcher, note=note, study=study)


def external_worker(*, backend: str, external_id: str) -> Worker:
    """The worker row of an external id from a crowd backend, made on first sight."""
    worker = Worker.objects.filter(backend=backend, external_id=external_id).first()
    if worker is not None:
        return worker
    try:
        with transaction.atomic():
            return Worker.objects.create(backend=backend, external_id=external_id)
    except IntegrityError:
        return Worker.objects.get(backend=backend, external_id=external_id)
