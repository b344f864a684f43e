"""URLs of the REST API. Include them under any prefix::

    path("api/", include("django_attachments.urls"))

Names (namespace ``django_attachments``): ``attachment-list``,
``attachment-detail``, ``attachment-download``.
"""

from rest_framework.routers import SimpleRouter

from .api.views import AttachmentViewSet

app_name = "django_attachments"

router = SimpleRouter()
router.register("attachments", AttachmentViewSet, basename="attachment")

urlpatterns = router.urls
