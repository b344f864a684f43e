"""URLs of the REST API. Include them under any prefix::

    path("api/", include("django_attachments.urls"))

Names (namespace ``django_attachments``): ``api-root`` (the prefix itself:
the endpoints, for callers the API's permission classes let in),
``attachment-list``, ``attachment-detail``, ``attachment-download``; for direct
uploads ``upload-list`` (start), ``upload-detail`` (also DELETE: cancel),
``upload-complete``, ``upload-parts`` (a multipart upload's parts) and, where
the storage cannot sign a URL, ``upload-content`` (the body) and
``upload-part`` (one part's body).
"""

from typing import Any

from django.urls import path
from rest_framework import routers

from .api import access, errors
from .api.direct import DirectUploadViewSet, UploadContentView, UploadPartView
from .api.views import AttachmentViewSet

app_name = "django_attachments"


class APIRootView(routers.APIRootView):
    """The API's index (DRF's root view), behind the same permission classes as its endpoints."""

    permission_classes = access.FromSettings("PERMISSION_CLASSES")

    def get_exception_handler(self) -> Any:
        return errors.handle_exception


class Router(routers.DefaultRouter):
    APIRootView = APIRootView
    # No ".json" suffix routes: an id may contain a dot, and "?format=json" or an Accept header does that job.
    include_format_suffixes = False
    #: The root's entries: key -> basename. "uploads" rather than its prefix, "attachments/uploads".
    root_entries = {"attachments": "attachment", "uploads": "upload"}

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        list_name = self.routes[0].name
        return self.APIRootView.as_view(
            api_root_dict={key: list_name.format(basename=basename) for key, basename in self.root_entries.items()}
        )


router = Router()
# Before "attachments": its detail route would otherwise take "uploads" for an attachment id.
router.register("attachments/uploads", DirectUploadViewSet, basename="upload")
router.register("attachments", AttachmentViewSet, basename="attachment")

urlpatterns = [
    # No trailing slash: `curl -T FILE URL` appends the file's name to a URL whose path ends in one.
    path("attachments/uploads/<str:pk>/content", UploadContentView.as_view(), name="upload-content"),
    path("attachments/uploads/<str:pk>/parts/<int:number>", UploadPartView.as_view(), name="upload-part"),
    *router.urls,
]
