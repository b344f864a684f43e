"""The owner registry: validation, duplicates, look-ups and temporary overrides."""

from __future__ import annotations

import pytest

from django_attachments.exceptions import AlreadyRegistered, InvalidOwnerType, UnknownOwnerType
from django_attachments.registry import AttachmentRegistry, Owner, OwnerSpec, attachment_registry


def resolver(owner_id):
    return Owner(tenant="t", subject="s")


@pytest.fixture
def registry():
    return AttachmentRegistry()


@pytest.mark.parametrize("owner_type", ["plan_item", "a", "x" * 40, "clinical.note", "plan-item", "v2_note"])
def test_valid_owner_types(registry, owner_type):
    registry.register(OwnerSpec(owner_type, resolver))
    assert registry.get(owner_type).owner_type == owner_type


@pytest.mark.parametrize("owner_type", ["", "x" * 41, "Plan", "plan item", "plan/item", "plän", "note\x00", None, 42])
def test_invalid_owner_types(owner_type):
    with pytest.raises(InvalidOwnerType):
        OwnerSpec(owner_type, resolver)


def test_duplicate_names_the_owner_type(registry):
    registry.register(OwnerSpec("plan_item", resolver))
    with pytest.raises(AlreadyRegistered, match="'plan_item'.*test_registry.resolver"):
        registry.register(OwnerSpec("plan_item", resolver))


def test_failed_lookup_lists_what_is_registered(registry):
    registry.register(OwnerSpec("patient", resolver))
    registry.register(OwnerSpec("note", resolver))
    with pytest.raises(UnknownOwnerType, match="Registered owner types: note, patient"):
        registry.get("invoice")
    with pytest.raises(UnknownOwnerType):
        registry.unregister("invoice")
    empty = AttachmentRegistry()
    with pytest.raises(UnknownOwnerType, match="Registered owner types: none"):
        empty.get("x")


def test_unknown_owner_type_is_a_lookup_error(registry):
    with pytest.raises(LookupError):
        registry.get("nope")


def test_iteration_membership_and_unregister(registry):
    a = registry.register(OwnerSpec("a", resolver))
    b = registry.register(OwnerSpec("b", resolver))
    assert list(registry) == [a, b] and len(registry) == 2
    assert "a" in registry and "z" not in registry
    assert registry.unregister("a") is a
    assert list(registry) == [b]


def test_override_replaces_and_restores(registry):
    original = registry.register(OwnerSpec("patient", resolver))
    replacement = OwnerSpec("patient", lambda owner_id: None)
    extra = OwnerSpec("extra", resolver)
    with registry.override(replacement, extra):
        assert registry.get("patient") is replacement
        assert registry.get("extra") is extra
    assert registry.get("patient") is original
    assert "extra" not in registry


def test_override_replace_all_hides_the_rest_and_restores_on_error(registry):
    registry.register(OwnerSpec("patient", resolver))
    with pytest.raises(RuntimeError):
        with registry.override(OwnerSpec("only", resolver), replace_all=True):
            assert [s.owner_type for s in registry] == ["only"]
            raise RuntimeError
    assert [s.owner_type for s in registry] == ["patient"]


def test_register_refuses_what_is_not_a_spec(registry):
    with pytest.raises(TypeError):
        registry.register("patient")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resolver": "not callable"},
        {"max_size": -1},
        {"max_size": True},
        {"allowed_names": "before"},
        {"allowed_content_types": "image/*"},
    ],
)
def test_spec_validates_its_options(kwargs):
    options = {"resolver": resolver, **kwargs}
    with pytest.raises((TypeError, ValueError)):
        OwnerSpec("patient", **options)


def test_spec_freezes_its_collections():
    spec = OwnerSpec("patient", resolver, allowed_names=["before", "after"], allowed_content_types=["image/*"])
    assert spec.allowed_names == frozenset({"before", "after"})
    assert spec.allowed_content_types == frozenset({"image/*"})


def test_consumer_apps_register_from_ready():
    # tests.testapp registers these in its AppConfig.ready().
    assert {"patient", "note"} <= {spec.owner_type for spec in attachment_registry}
