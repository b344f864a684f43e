"""The attachments API, and the bare views the benchmarks compare it with."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("api/", include("django_attachments.urls")),
    path("bare/upload/", views.bare_upload, name="bare-upload"),
    path("bare/download/", views.bare_download, name="bare-download"),
    path("bare/list/", views.bare_list, name="bare-list"),
]
