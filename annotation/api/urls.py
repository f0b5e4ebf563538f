"""``/api/``: the REST API (schema and docs at ``/api/docs``) and the researcher's token page."""
from django.urls import path

from annotation.api import views
from annotation.api.endpoints import api

urlpatterns = [
    path("tokens/", views.token_list, name="api_tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke_view, name="api_token_revoke"),
    path("", api.urls),
]
