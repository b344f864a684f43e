"""The REST API: DRF views over :mod:`django_attachments.services`.

Include it in a project's URLs::

    urlpatterns = [path("api/", include("django_attachments.urls"))]

and every request sees only its tenant's files (``TENANT_RESOLVER``); see
``docs/api.md`` for the endpoints, their bodies and their errors.
"""
