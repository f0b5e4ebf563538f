"""The researcher's registry pages: their models and datasets, and registering new ones (a server path, an
``s3://`` key or prefix, or an uploaded checkpoint or image archive)."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render

from annotation.errors import ApplicationError
from annotation.forms import DatasetRegistrationForm, ModelRegistrationForm
from annotation.models import RegisteredDataset, RegisteredModel
from annotation.permissions import researcher_required
from annotation.services import registry, registry_uploads
from annotation.upload_limits import refused

FORMS = {"model": ModelRegistrationForm, "dataset": DatasetRegistrationForm}


@researcher_required
def registry_page(request):
    """Lists the visible entries; a POST registers one (``what`` = model or dataset), a 400 naming the problem
    (413 for an upload past its size limit, stopped while it streamed in)."""
    forms = {what: form_class(prefix=what) for what, form_class in FORMS.items()}
    status = 200
    if request.method == "POST":
        if stopped := refused(request):
            return _page(request, forms, stopped[1], status=413)
        what = request.POST.get("what", "")
        if what not in FORMS:
            return render(request, "error.html", {"message": f"register a model or a dataset, not {what!r}"},
                          status=400)
        form = forms[what] = FORMS[what](request.POST, request.FILES, prefix=what)
        if form.is_valid():
            try:
                entry = registry_uploads.entry_register(owner=request.user, what=what, data=form.cleaned_data)
            except ApplicationError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"{what} {entry.name!r} registered.")
                return redirect("registry")
        status = 400
    return _page(request, forms, "", status)


def _page(request, forms: dict, upload_error: str, status: int):
    return render(request, "annotation/registry.html", {
        "models": registry.visible(RegisteredModel, request.user),
        "datasets": registry.visible(RegisteredDataset, request.user),
        "forms": forms, "upload_error": upload_error,
    }, status=status)
