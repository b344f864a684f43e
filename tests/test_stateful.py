"""A Hypothesis state machine over the services: attach, link, unlink, unlink_all_for_owner and the purges.

It runs on SQLite and a local-disk store in a temporary folder, inside
pytest-django's transaction for the test; every run of the machine (one
Hypothesis example) starts from empty tables and an empty store. A model
keeps the attachments and blobs the services should have made, and after
every step the database and the store are checked against it:

- the attachments in the database are the model's, each on a blob of its owner's tenant and subject;
- the blobs are the model's, one per (tenant, subject, checksum), reused rather than duplicated;
- every blob's bytes are in the store, with its size and SHA-256 (read back through ``open_blob``);
- the store holds exactly the blobs' objects: unlinking leaves an orphan blob (with its bytes)
  for the purge, so no step ever leaves a stray object;
- right after ``purge_orphans`` no orphan blob remains.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_attachments import services
from django_attachments.exceptions import BlobNotFound, OwnerMismatch, OwnerNotFound
from django_attachments.models import Attachment, Blob
from django_attachments.stores import get_store
from tests.conftest import PDF_BYTES, PNG_BYTES

# Small, so that the same bytes come back often and are deduplicated; b"" is a legal, empty file.
CONTENTS = [b"alpha", b"beta", b"", PNG_BYTES, PDF_BYTES]
# Slots every test owner type accepts (notes allow exactly these; patients any).
SLOTS = ["", "before", "after", "xray"]

MACHINE_SETTINGS = settings(
    max_examples=75,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True, order=True)
class OwnerRef:
    owner_type: str
    owner_id: str
    tenant: str
    subject: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def disk_store(settings, tmp_path):
    """DJANGO_ATTACHMENTS["STORAGE"] on a FileSystemStorage in a temporary folder; returns (store, folder)."""
    location = tmp_path / "store"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "attachments"}
    return get_store("attachments"), location


def reset(location: Path) -> None:
    Attachment.objects.all().delete()
    Blob.objects.all().delete()
    shutil.rmtree(location, ignore_errors=True)


def read_back(blob: Blob) -> bytes:
    with services.open_blob(blob) as stream:
        return b"".join(stream.chunks())


@pytest.mark.django_db
def test_services_state_machine(owners, disk_store):
    store, location = disk_store
    # Two patients (subjects) of clinic A with their notes, and one patient of clinic B with a note.
    people = [
        ("patient", owners.alice, owners.alice),
        ("note", owners.alice_note, owners.alice),
        ("note", owners.alice_note2, owners.alice),
        ("patient", owners.adam, owners.adam),
        ("note", owners.adam_note, owners.adam),
        ("patient", owners.bob, owners.bob),
        ("note", owners.bob_note, owners.bob),
    ]
    owner_list = [
        OwnerRef(owner_type, str(instance.pk), str(patient.clinic_id), str(patient.pk))
        for owner_type, instance, patient in people
    ]
    by_key = {(o.owner_type, o.owner_id): o for o in owner_list}
    other_tenant = {owners.tenant_a: owners.tenant_b, owners.tenant_b: owners.tenant_a}

    class ServicesMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            reset(location)
            #: (owner_type, owner_id, name, checksum) of every attachment that should exist.
            self.attachments: set[tuple[str, str, str, str]] = set()
            #: (tenant, subject, checksum) -> Blob.pk of every blob that should exist.
            self.blobs: dict[tuple[str, str, str], UUID] = {}
            self.just_purged = False

        def teardown(self):
            reset(location)

        # -- the model's own questions ------------------------------------------

        def blob_key_of(self, attachment_key):
            owner = by_key[attachment_key[:2]]
            return owner.tenant, owner.subject, attachment_key[3]

        def orphans(self):
            linked = {self.blob_key_of(key) for key in self.attachments}
            return set(self.blobs) - linked

        def record(self, owner, slot, checksum, attachment):
            """Check an attachment the services returned against the model, then add it."""
            key = (owner.owner_type, owner.owner_id, slot, checksum)
            blob_key = (owner.tenant, owner.subject, checksum)
            assert attachment.was_created == (key not in self.attachments)
            assert (attachment.owner_type, attachment.owner_id, attachment.name) == key[:3]
            assert (attachment.blob.tenant, attachment.blob.subject, attachment.blob.checksum) == blob_key
            if blob_key in self.blobs:
                assert attachment.blob_id == self.blobs[blob_key]  # the same bytes reuse the blob
            self.blobs[blob_key] = attachment.blob_id
            self.attachments.add(key)
            self.just_purged = False

        # -- rules ----------------------------------------------------------------

        @initialize(owner=st.sampled_from(owner_list), content=st.sampled_from(CONTENTS))
        def first_file(self, owner, content):
            """Start with one file, so that link, unlink and the purges have something to work on."""
            self.attach(owner, content, slot="", as_tenant="own")

        @rule(
            owner=st.sampled_from(owner_list),
            content=st.sampled_from(CONTENTS),
            slot=st.sampled_from(SLOTS),
            as_tenant=st.sampled_from(["own", "none", "other"]),
        )
        def attach(self, owner, content, slot, as_tenant):
            tenant = {"own": owner.tenant, "none": None, "other": other_tenant[owner.tenant]}[as_tenant]
            call = dict(owner_type=owner.owner_type, owner_id=owner.owner_id, name=slot, tenant=tenant)
            if as_tenant == "other":
                with pytest.raises(OwnerNotFound):  # another tenant's owner does not exist
                    services.attach(content, **call)
                return
            attachment = services.attach(content, filename=f"{slot or 'file'}.bin", **call)
            self.record(owner, slot, sha256(content), attachment)

        @precondition(lambda self: self.blobs)
        @rule(
            data=st.data(),
            owner=st.sampled_from(owner_list),
            slot=st.sampled_from(SLOTS),
            pass_tenant=st.booleans(),
            blob_as=st.sampled_from(["instance", "uuid", "str"]),
        )
        def link(self, data, owner, slot, pass_tenant, blob_as):
            blob_key = data.draw(st.sampled_from(sorted(self.blobs)), label="blob")
            blob_id = self.blobs[blob_key]
            blob = {
                "instance": lambda: Blob.objects.get(pk=blob_id),
                "uuid": lambda: blob_id,
                "str": lambda: str(blob_id),
            }
            blob_tenant, blob_subject, checksum = blob_key
            call = dict(
                owner_type=owner.owner_type,
                owner_id=owner.owner_id,
                name=slot,
                tenant=owner.tenant if pass_tenant else None,
            )
            if pass_tenant and blob_tenant != owner.tenant:
                expected = BlobNotFound  # seen from the owner's tenant, the blob does not exist
            elif (blob_tenant, blob_subject) != (owner.tenant, owner.subject):
                expected = OwnerMismatch
            else:
                expected = None
            if expected is not None:
                with pytest.raises(expected):
                    services.link(blob[blob_as](), **call)
                return
            attachment = services.link(blob[blob_as](), **call)
            self.record(owner, slot, checksum, attachment)

        @precondition(lambda self: self.attachments)
        @rule(data=st.data())
        def unlink(self, data):
            key = data.draw(st.sampled_from(sorted(self.attachments)), label="attachment")
            owner_type, owner_id, name, checksum = key
            row = Attachment.objects.get(owner_type=owner_type, owner_id=owner_id, name=name, blob__checksum=checksum)
            services.unlink(row)
            services.unlink(row)  # a second unlink of the same attachment is a no-op
            self.attachments.remove(key)
            self.just_purged = False

        @rule(owner=st.sampled_from(owner_list), id_as_int=st.booleans())
        def unlink_all_for_owner(self, owner, id_as_int):
            mine = {key for key in self.attachments if key[:2] == (owner.owner_type, owner.owner_id)}
            owner_id = int(owner.owner_id) if id_as_int else owner.owner_id
            assert services.unlink_all_for_owner(owner.owner_type, owner_id) == len(mine)
            self.attachments -= mine
            self.just_purged = False

        @precondition(lambda self: self.orphans())
        @rule()
        def purge_orphans(self):
            orphans = self.orphans()
            result = services.purge_orphans(older_than=timedelta(0))
            assert result.ok, result.failures
            assert result.found == result.removed == len(orphans)
            for blob_key in orphans:
                del self.blobs[blob_key]
            self.just_purged = True

        @precondition(lambda self: self.blobs)
        @rule()
        def purge_strays(self):
            result = services.purge_strays(older_than=timedelta(0), allow_young=True)
            assert result.ok and result.found == 0  # every object belongs to a blob

        # -- invariants ---------------------------------------------------------------

        @invariant()
        def attachments_are_the_models(self):
            rows = list(Attachment.objects.select_related("blob"))
            found = [(a.owner_type, a.owner_id, a.name, a.blob.checksum) for a in rows]
            assert len(found) == len(set(found))
            assert set(found) == self.attachments
            for attachment, key in zip(rows, found, strict=True):
                assert (attachment.blob.tenant, attachment.blob.subject) == self.blob_key_of(key)[:2]

        @invariant()
        def blobs_are_the_models_and_unique(self):
            rows = list(Blob.objects.all())
            keys = [(b.tenant, b.subject, b.checksum) for b in rows]
            assert len(keys) == len(set(keys))  # one blob per (tenant, subject, checksum)
            assert {key: b.pk for key, b in zip(keys, rows, strict=True)} == self.blobs

        @invariant()
        def bytes_are_stored_and_nothing_else(self):
            rows = list(Blob.objects.all())
            for blob in rows:
                data = read_back(blob)
                assert len(data) == blob.size and sha256(data) == blob.checksum
            assert {obj.name for obj in store.list()} == {b.storage_identifiers["name"] for b in rows}

        @invariant()
        def no_orphan_survives_a_purge(self):
            if self.just_purged:
                assert not Blob.objects.orphans().exists()
                assert not self.orphans()

    run_state_machine_as_test(ServicesMachine, settings=MACHINE_SETTINGS)
