"""The researcher's API token page: list, create (the secret shown once) and revoke."""
from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.permissions import researcher_required
from annotation.services.api_tokens import token_create, token_revoke


def _page(request, new_secret: str = "", status: int = 200):
    tokens = selectors.lookups.api_tokens_of(user=request.user)
    return render(request, "annotation/api_tokens.html", {"tokens": tokens, "new_secret": new_secret},
                  status=status)


@researcher_required
def token_list(request):
    if request.method == "POST":
        _, secret = token_create(user=request.user, name=request.POST.get("name", "").strip())
        return _page(request, new_secret=secret, status=201)
    return _page(request)


@require_POST
@researcher_required
def token_revoke_view(request, pk: int):
    token_revoke(user=request.user, pk=pk)
    return redirect("api_tokens")
