"""The owner registry: which kinds of things may own files, and whose they are.

Files attach to an *owner* named by a free-text ``owner_type`` and a string
``owner_id``. django_attachments never imports the apps that own files;
instead each consumer app registers its owner types, with a resolver, from its
own ``AppConfig.ready()``::

    from django_attachments.registry import Owner, OwnerSpec, attachment_registry

    def resolve_plan_item(owner_id: str) -> Owner | None:
        item = PlanItem.objects.filter(pk=owner_id).select_related("plan").first()
        if item is None:
            return None
        return Owner(tenant=str(item.plan.clinic_id), subject=str(item.plan.patient_id), instance=item)

    class TreatmentPlanConfig(AppConfig):
        def ready(self):
            attachment_registry.register(
                OwnerSpec(owner_type="plan_item", resolver=resolve_plan_item,
                          allowed_names={"before", "after", "xray", "reference"})
            )

A resolver only answers "does this owner exist, and whose is it?"; the
services enforce the policy (same tenant, same subject). Tests swap
registrations without monkeypatching::

    with attachment_registry.override(OwnerSpec("plan_item", fake_resolver)):
        ...
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .exceptions import AlreadyRegistered, InvalidOwnerType, UnknownOwnerType

OWNER_TYPE_MAX_LENGTH = 40
_OWNER_TYPE_RE = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True)
class Owner:
    """What a resolver returns for an owner that exists.

    ``tenant`` is the isolation boundary (e.g. a clinic): a caller of one
    tenant never sees another's files. ``subject`` is what every owner of one
    file must share (e.g. a patient). ``None`` means "none" for either.
    ``instance`` is the owner object itself, for the caller's convenience.
    """

    tenant: str | None = None
    subject: str | None = None
    instance: Any = field(default=None, compare=False)
    #: The owner's canonical id, under which attachments are stored. When None,
    #: the primary key of ``instance`` is used if it is a model instance and the
    #: resolver finds the same owner by it, else the id as the caller gave it;
    #: so "01", "+1" and "1" cannot become three owners of one row. Set it when
    #: the resolver looks owners up by anything but the primary key.
    id: str | None = None

    def canonical_id(self, given: str) -> str:
        """``id`` if set, else the primary key of a model ``instance``, else ``given`` (unverified)."""
        if self.id is not None:
            return str(self.id)
        meta, pk = getattr(self.instance, "_meta", None), getattr(self.instance, "pk", None)
        if meta is not None and pk is not None:
            return str(pk)
        return given


Resolver = Callable[[str], "Owner | None"]


@dataclass(frozen=True)
class OwnerSpec:
    """One registered owner type.

    ``resolver(owner_id)`` returns an :class:`Owner`, or ``None`` when no such
    owner exists. The optional limits narrow the global settings for files
    attached to this owner type: ``allowed_content_types`` (patterns such as
    ``"image/*"``), ``max_size`` in bytes, and ``allowed_names`` (the slots an
    attachment may use; ``None`` allows any).

    Two optional hooks refine who may do what through the API, once the owner
    is known to be in the caller's tenant: ``can_view(request, owner)`` (see
    the owner's files; a denied caller is told the owner does not exist) and
    ``can_attach(request, owner)`` (add, edit or remove the owner's files; a
    caller who may view but not attach gets 403).

    ``variants``, optional, adds named variants (thumbnails, previews) for
    this owner type's files, or overrides global ones of the same name
    (``DJANGO_ATTACHMENTS["VARIANTS"]``): a mapping of name to spec, as in the
    setting; a name mapped to ``None`` turns a global variant off here.

    ``batch_resolver(owner_ids)``, optional, resolves many owners in one go
    (``{owner_id: Owner}``, leaving out or mapping to None the ones that do not
    exist); the purge's dangling-link check uses it instead of one resolver
    call per owner.
    """

    owner_type: str
    resolver: Resolver
    allowed_content_types: Collection[str] | None = None
    max_size: int | None = None
    allowed_names: Collection[str] | None = None
    can_view: Callable[[Any, Owner], bool] | None = None
    can_attach: Callable[[Any, Owner], bool] | None = None
    batch_resolver: Callable[[Sequence[str]], Mapping[str, Owner | None]] | None = None
    variants: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_owner_type(self.owner_type)
        if self.variants is not None:
            from .processing.renderers import VariantSpec

            if not isinstance(self.variants, Mapping):
                raise TypeError(f"OwnerSpec({self.owner_type!r}): variants must be a mapping of name to spec.")
            specs: dict[str, VariantSpec | None] = {}
            for name, value in self.variants.items():
                try:
                    specs[name] = None if value is None else VariantSpec.from_value(name, value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"OwnerSpec({self.owner_type!r}): variant {name!r}: {exc}") from exc
            object.__setattr__(self, "variants", specs)
        for attr in ("resolver", "can_view", "can_attach", "batch_resolver"):
            value = getattr(self, attr)
            if not callable(value) and not (value is None and attr != "resolver"):
                raise TypeError(f"OwnerSpec({self.owner_type!r}): {attr} must be callable, not {value!r}.")
        if self.max_size is not None and (
            isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 0
        ):
            raise ValueError(f"OwnerSpec({self.owner_type!r}): max_size must be a non-negative int or None.")
        for attr in ("allowed_content_types", "allowed_names"):
            value = getattr(self, attr)
            if value is not None:
                if isinstance(value, str):
                    raise TypeError(
                        f"OwnerSpec({self.owner_type!r}): {attr} must be a collection of strings, not a str."
                    )
                object.__setattr__(self, attr, frozenset(value))


def validate_owner_type(owner_type: object) -> str:
    """Return ``owner_type`` if it is a well-formed name, else raise InvalidOwnerType."""
    if not isinstance(owner_type, str) or not owner_type:
        raise InvalidOwnerType(f"owner_type must be a non-empty string, not {owner_type!r}.")
    if len(owner_type) > OWNER_TYPE_MAX_LENGTH:
        raise InvalidOwnerType(
            f"owner_type {owner_type[:50]!r} is {len(owner_type)} characters long; "
            f"the limit is {OWNER_TYPE_MAX_LENGTH}."
        )
    if not _OWNER_TYPE_RE.fullmatch(owner_type):
        raise InvalidOwnerType(f"owner_type {owner_type!r} may only use lowercase letters, digits, '_', '.' and '-'.")
    return owner_type


class AttachmentRegistry:
    """A thread-safe map of owner type -> :class:`OwnerSpec`."""

    def __init__(self) -> None:
        self._specs: dict[str, OwnerSpec] = {}
        self._lock = threading.RLock()

    def register(self, spec: OwnerSpec) -> OwnerSpec:
        if not isinstance(spec, OwnerSpec):
            raise TypeError(f"register() takes an OwnerSpec, not {spec!r}.")
        with self._lock:
            if spec.owner_type in self._specs:
                raise AlreadyRegistered(
                    f"Owner type {spec.owner_type!r} is already registered "
                    f"(by {_describe(self._specs[spec.owner_type].resolver)})."
                )
            self._specs[spec.owner_type] = spec
        return spec

    def unregister(self, owner_type: str) -> OwnerSpec:
        with self._lock:
            try:
                return self._specs.pop(owner_type)
            except KeyError:
                raise self._unknown(owner_type) from None

    def get(self, owner_type: str) -> OwnerSpec:
        try:
            return self._specs[owner_type]
        except (KeyError, TypeError):
            raise self._unknown(owner_type) from None

    def is_registered(self, owner_type: str) -> bool:
        return owner_type in self._specs

    def __contains__(self, owner_type: object) -> bool:
        return owner_type in self._specs

    def __iter__(self) -> Iterator[OwnerSpec]:
        with self._lock:
            return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    @contextmanager
    def override(self, *specs: OwnerSpec, replace_all: bool = False) -> Iterator[AttachmentRegistry]:
        """Temporarily register ``specs``, replacing same-named registrations.

        With ``replace_all=True`` every other registration is hidden too. The
        previous registrations come back when the block exits, even on error.
        """
        with self._lock:
            saved = dict(self._specs)
            if replace_all:
                self._specs.clear()
            for spec in specs:
                if not isinstance(spec, OwnerSpec):
                    self._specs = saved
                    raise TypeError(f"override() takes OwnerSpec objects, not {spec!r}.")
                self._specs[spec.owner_type] = spec
        try:
            yield self
        finally:
            with self._lock:
                self._specs = saved

    def _unknown(self, owner_type: object) -> UnknownOwnerType:
        known = ", ".join(sorted(self._specs)) or "none"
        return UnknownOwnerType(f"Unknown owner type {owner_type!r}. Registered owner types: {known}.")


def _describe(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}"


#: The process-global registry that consumer apps register into.
attachment_registry = AttachmentRegistry()
