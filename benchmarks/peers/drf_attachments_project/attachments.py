"""The callable drf-attachments asks for the serializer's ``content_object`` field (its README, step 3)."""

from generic_relations.relations import GenericRelatedField
from rest_framework import serializers

from .models import Thing


def attachment_content_object_field() -> GenericRelatedField:
    return GenericRelatedField(
        {Thing: serializers.HyperlinkedRelatedField(queryset=Thing.objects.all(), view_name="thing-detail")}
    )
