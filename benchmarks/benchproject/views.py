"""Anchors: what a project writes by hand without django_attachments.

- ``bare_upload``: Django parses the multipart request with its default
  upload handlers (``request.FILES["file"]``) and ``FileSystemStorage.save()``
  stores it (a rename of the temporary upload file, on one file system).
- ``bare_download``: ``FileResponse`` of a file of the attachments' media
  folder (``?name=``); no ranges, no checks.
- ``bare_list``: one owner's attachments, paginated with Django's
  ``Paginator`` over ``values()`` with the blob's columns joined in.
"""

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_attachments.models import Attachment

bare_storage = FileSystemStorage(location=settings.BARE_MEDIA_ROOT)
media_storage = FileSystemStorage(location=settings.MEDIA_ROOT)


@csrf_exempt
@require_POST
def bare_upload(request):
    upload = request.FILES.get("file")
    if upload is None:
        return HttpResponseBadRequest("no file")
    name = bare_storage.save(upload.name, upload)
    return JsonResponse({"name": name, "size": upload.size}, status=201)


@require_GET
def bare_download(request):
    name = request.GET.get("name", "")
    try:
        path = media_storage.path(name)  # refuses names outside the folder
        handle = open(path, "rb")  # noqa: SIM115 (FileResponse closes it)
    except Exception:
        raise Http404("no such file") from None
    return FileResponse(handle, as_attachment=True, filename="download.bin")


@require_GET
def bare_list(request):
    queryset = (
        Attachment.objects.filter(
            owner_type=request.GET.get("owner_type", ""), owner_id=request.GET.get("owner_id", "")
        )
        .order_by("-created_at", "-id")
        .values(
            "id",
            "owner_type",
            "owner_id",
            "name",
            "description",
            "blob_id",
            "blob__filename",
            "blob__content_type",
            "blob__size",
            "blob__checksum",
            "created_at",
        )
    )
    page_size = min(int(request.GET.get("page_size", 50)), 500)
    page = Paginator(queryset, page_size).get_page(request.GET.get("page", 1))
    return JsonResponse({"count": page.paginator.count, "results": list(page.object_list)})
