"""drf-attachments' viewset as shipped, and the owners' detail view its hyperlinked ``content_object`` needs."""

from django.urls import include, path
from drf_attachments.rest.views import AttachmentViewSet
from rest_framework import routers, serializers, viewsets

from .models import Thing


class ThingSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Thing
        fields = ["url", "label"]


class ThingViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Thing.objects.all()
    serializer_class = ThingSerializer


router = routers.SimpleRouter()
router.register("attachment", AttachmentViewSet)
router.register("thing", ThingViewSet)

urlpatterns = [path("api/", include(router.urls))]
