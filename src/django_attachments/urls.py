"""URLs of the REST API. Include them under any prefix::

    path("api/", include("django_attachments.urls"))

Names (namespace ``django_attachments``): ``attachment-list``,
``attachment-detail``, ``attachment-download``; for direct uploads
``upload-list`` (start), ``upload-detail``, ``upload-complete`` and
``upload-content`` (the body, where the storage cannot sign a URL).
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .api.direct import DirectUploadViewSet, UploadContentView
from .api.views import AttachmentViewSet

app_name = "django_attachments"

router = SimpleRouter()
# Before "attachments": its detail route would otherwise take "uploads" for an attachment id.
router.register("attachments/uploads", DirectUploadViewSet, basename="upload")
router.register("attachments", AttachmentViewSet, basename="attachment")

urlpatterns = [
    # No trailing slash: `curl -T FILE URL` appends the file's name to a URL whose path ends in one.
    path("attachments/uploads/<str:pk>/content", UploadContentView.as_view(), name="upload-content"),
    *router.urls,
]
