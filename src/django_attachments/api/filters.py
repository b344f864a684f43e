"""The list endpoint's query parameters: the filters, and the pagination's.

A malformed value is a 400 naming the parameter, never an empty page::

    GET attachments/?scan=pending,failed&content_type=image/*   # several values: commas, or repeat the parameter
    GET attachments/?scan=dirty                                  # 400 {"scan": [...], "code": "invalid_choice"}
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty

from ..models import NAME_MAX_LENGTH, OWNER_ID_MAX_LENGTH, AnalysisState, ScanState
from ..registry import OWNER_TYPE_MAX_LENGTH
from .serializers import StrictCharField

#: A content type (``image/png``) or a family (``image/*``): RFC 6838 names, either case.
_TYPE_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
CONTENT_TYPE_PATTERN = re.compile(rf"{_TYPE_NAME}/(?:{_TYPE_NAME}|\*)")


class ValueListField(StrictCharField):
    """Comma-separated values (``pending,failed``), each checked by :meth:`check_item`; a list out.

    No spaces, no empty items: ``"clean, failed"`` and ``"clean,"`` are refused, not read generously.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 1000)
        super().__init__(trim_whitespace=False, **kwargs)

    def run_validation(self, data: Any = empty) -> list[str]:
        text = super().run_validation(data)  # the whole string: blank, too long, null characters
        return list(dict.fromkeys(self.check_item(item) for item in text.split(",")))

    def check_item(self, item: str) -> str:
        raise NotImplementedError(".check_item() must be overridden.")


class StateListField(ValueListField):
    """States of one pipeline stage, from ``choices``; an unknown one is ``invalid_choice``."""

    default_error_messages = {"invalid_choice": '"{input}" is not a valid state; the states are: {choices}.'}

    def __init__(self, choices: list[tuple[str, Any]], **kwargs: Any) -> None:
        self.choices = [value for value, _ in choices]
        super().__init__(**kwargs)

    def check_item(self, item: str) -> str:
        if item not in self.choices:
            self.fail("invalid_choice", input=item[:50], choices=", ".join(self.choices))
        return item


class ContentTypeListField(ValueListField):
    """Content types (``application/pdf``) or families (``image/*``), lowercased as the sniffed types are."""

    default_error_messages = {
        "invalid": 'Enter content types such as "application/pdf" or families such as "image/*", separated by commas.'
    }

    def check_item(self, item: str) -> str:
        if not CONTENT_TYPE_PATTERN.fullmatch(item):
            self.fail("invalid")
        return item.lower()


class ListFilterSerializer(serializers.Serializer):
    """The list endpoint's query parameters; a malformed value is a 400, not an empty page."""

    owner_type = StrictCharField(max_length=OWNER_TYPE_MAX_LENGTH, required=False)
    owner_id = StrictCharField(max_length=OWNER_ID_MAX_LENGTH, required=False)
    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True)
    checksum = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False)
    scan = StateListField(ScanState.choices, required=False)
    analysis = StateListField(AnalysisState.choices, required=False)
    content_type = ContentTypeListField(required=False)

    #: The filters that take several values: comma-separated, or the parameter repeated.
    LIST_FILTERS = ("scan", "analysis", "content_type")


class ListQuerySerializer(ListFilterSerializer):
    """The filters plus the pagination parameters, which the paginator documents itself."""

    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, required=False)
