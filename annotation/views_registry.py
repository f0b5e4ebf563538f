"""The researcher's registry pages: their models and datasets, and registering new ones."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render

from annotation.errors import ApplicationError
from annotation.forms import DatasetRegistrationForm, ModelRegistrationForm
from annotation.models import RegisteredDataset, RegisteredModel
from annotation.permissions import researcher_required
from annotation.services import registry

FORMS = {"model": (ModelRegistrationForm, registry.model_register),
         "dataset": (DatasetRegistrationForm, registry.dataset_register)}


@researcher_required
def registry_page(request):
    """Lists the visible entries; a POST registers one (``what`` = model or dataset), a 400 naming the problem."""
    forms = {"model": ModelRegistrationForm(prefix="model"), "dataset": DatasetRegistrationForm(prefix="dataset")}
    status = 200
    if request.method == "POST":
        what = request.POST.get("what", "")
        if what not in FORMS:
            return render(request, "error.html", {"message": f"register a model or a dataset, not {what!r}"},
                          status=400)
        form_class, register = FORMS[what]
        form = forms[what] = form_class(request.POST, prefix=what)
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
            try:
                entry = register(owner=request.user, **data)
            except ApplicationError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"{what} {entry.name!r} registered.")
                return redirect("registry")
        status = 400
    return render(request, "annotation/registry.html", {
        "models": registry.visible(RegisteredModel, request.user),
        "datasets": registry.visible(RegisteredDataset, request.user),
        "forms": forms,
    }, status=status)
