"""URLs of the example project: the attachments API, its schema and Swagger UI, the admin, the demo's pages."""

from demo.views import direct_upload, patient_gallery
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="swagger-ui", permanent=False)),
    path("api/", include("django_attachments.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("direct-upload/", direct_upload, name="direct-upload"),
    path("patients/<int:patient_id>/gallery/", patient_gallery, name="patient-gallery"),
]
