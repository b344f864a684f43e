"""attach, link, unlink: policy, dedup and byte/row consistency, on disk and on S3."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.db import transaction

from django_attachments import services
from django_attachments.exceptions import (
    AttachmentError,
    BlobNotFound,
    ContentTypeNotAllowed,
    EmptyFile,
    FileTooLarge,
    InvalidFile,
    InvalidSlot,
    InvalidValue,
    OwnerMismatch,
    OwnerNotFound,
    UnknownOwnerType,
)
from django_attachments.models import Attachment, Blob
from django_attachments.registry import OwnerSpec, attachment_registry
from django_attachments.signals import attachment_created, attachment_deleted, blob_created
from tests.testapp.owners import resolve_note

pytestmark = pytest.mark.django_db


def stored_names(store):
    return sorted(obj.name for obj in store.list())


def read_all(blob):
    with services.open_blob(blob) as stream:
        return b"".join(stream.chunks())


def test_attach_stores_bytes_and_facts(owners, store, png):
    upload = SimpleUploadedFile("x-ray 1.png", png, content_type="application/pdf")
    attachment = services.attach(upload, owner_type="note", owner_id=owners.alice_note.pk, name="xray")

    blob = Blob.objects.get()
    assert attachment.blob == blob and attachment.was_created
    assert (attachment.owner_type, attachment.owner_id, attachment.name) == ("note", str(owners.alice_note.pk), "xray")
    assert blob.size == len(png)
    assert blob.checksum == __import__("hashlib").sha256(png).hexdigest()
    # The sniffed type wins over the client's word, which is only recorded.
    assert blob.content_type == "image/png"
    assert blob.metadata["declared_content_type"] == "application/pdf"
    assert blob.filename == "x-ray 1.png"
    assert (blob.tenant, blob.subject) == (owners.tenant_a, str(owners.alice.pk))
    assert blob.storage == store.alias
    assert blob.storage_identifiers["storage"] == store.alias
    assert stored_names(store) == [blob.storage_identifiers["name"]]
    assert read_all(blob) == png


def test_storage_key_is_random_and_never_the_filename(owners, store, png):
    services.attach(SimpleUploadedFile("../../etc/passwd.png", png), owner_type="patient", owner_id=owners.alice.pk)
    blob = Blob.objects.get()
    name = blob.storage_identifiers["name"]
    assert name.startswith("attachments/") and "passwd" not in name and ".." not in name
    assert blob.filename == "passwd.png"
    assert "/" not in str(blob.storage_identifiers.get("path", ""))  # no machine paths either


def test_same_bytes_twice_store_once(owners, store, pdf):
    first = services.attach(SimpleUploadedFile("a.pdf", pdf), owner_type="note", owner_id=owners.alice_note.pk)
    second = services.attach(SimpleUploadedFile("b.pdf", pdf), owner_type="note", owner_id=owners.alice_note2.pk)
    assert first.blob_id == second.blob_id
    assert Blob.objects.count() == 1 and Attachment.objects.count() == 2
    assert len(stored_names(store)) == 1


def test_dedup_does_not_cross_subjects_or_tenants(owners, store, pdf):
    a = services.attach(io.BytesIO(pdf), owner_type="note", owner_id=owners.alice_note.pk)
    b = services.attach(io.BytesIO(pdf), owner_type="note", owner_id=owners.adam_note.pk)  # other patient
    c = services.attach(io.BytesIO(pdf), owner_type="note", owner_id=owners.bob_note.pk)  # other clinic
    assert len({a.blob_id, b.blob_id, c.blob_id}) == 3
    assert len(stored_names(store)) == 3


def test_attaching_the_same_file_to_the_same_slot_is_idempotent(owners, store, pdf):
    first = services.attach(io.BytesIO(pdf), owner_type="patient", owner_id=owners.alice.pk)
    again = services.attach(io.BytesIO(pdf), owner_type="patient", owner_id=owners.alice.pk)
    assert again.pk == first.pk and not again.was_created
    assert Attachment.objects.count() == 1


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda data: data, id="bytes"),
        pytest.param(lambda data: io.BytesIO(data), id="BytesIO"),
        pytest.param(lambda data: SimpleUploadedFile("f.pdf", data), id="in-memory-upload"),
        pytest.param(lambda data: NonSeekable(data), id="non-seekable-stream"),
    ],
)
def test_accepts_every_kind_of_file(owners, store, pdf, make):
    attachment = services.attach(make(pdf), owner_type="patient", owner_id=owners.alice.pk)
    assert read_all(attachment.blob) == pdf
    assert attachment.blob.content_type == "application/pdf"


def test_temporary_upload_is_moved_or_copied_and_readable(owners, store, pdf):
    upload = TemporaryUploadedFile("big.pdf", "application/pdf", len(pdf), None)
    upload.write(pdf)
    upload.seek(0)
    attachment = services.attach(upload, owner_type="patient", owner_id=owners.alice.pk)
    upload.close()
    assert read_all(attachment.blob) == pdf


class NonSeekable(io.RawIOBase):
    """A stream that can only be read forwards, like a socket or a pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_unknown_owner_type_names_the_registered_ones(owners):
    with pytest.raises(UnknownOwnerType, match="note, patient"):
        services.attach(b"x", owner_type="invoice", owner_id="1")


def test_missing_owner_and_other_tenants_owner_are_the_same_error(owners, store, pdf):
    with pytest.raises(OwnerNotFound) as missing:
        services.attach(pdf, owner_type="patient", owner_id="999999", tenant=owners.tenant_a)
    with pytest.raises(OwnerNotFound) as foreign:
        services.attach(pdf, owner_type="patient", owner_id=owners.bob.pk, tenant=owners.tenant_a)
    assert type(missing.value) is type(foreign.value)
    assert str(missing.value).replace("999999", "ID") == str(foreign.value).replace(str(owners.bob.pk), "ID")
    assert not Blob.objects.exists() and stored_names(store) == []


@pytest.mark.parametrize("owner_id", ["abc", "1; DROP TABLE x", " 1", "", None, "9" * 65, "1\x00"])
def test_malformed_owner_ids_are_clear_errors(owners, owner_id):
    with pytest.raises((OwnerNotFound, InvalidValue)):
        services.attach(b"x", owner_type="patient", owner_id=owner_id)


def test_slots_are_checked_against_the_spec(owners, store, png):
    with pytest.raises(InvalidSlot, match="'after', 'before', 'xray'"):
        services.attach(png, owner_type="note", owner_id=owners.alice_note.pk, name="selfie")
    assert not Blob.objects.exists()


def test_size_limits_global_and_per_owner_type(owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": len(pdf) - 1}
    with pytest.raises(FileTooLarge) as exc:
        services.attach(NonSeekable(pdf), owner_type="patient", owner_id=owners.alice.pk)
    assert exc.value.limit == len(pdf) - 1
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": len(pdf)}
    services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)  # exactly at the limit

    with attachment_registry.override(OwnerSpec("note", resolve_note, max_size=10)):
        with pytest.raises(FileTooLarge):
            services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk)
    assert Blob.objects.count() == 1 and len(stored_names(store)) == 1


def test_a_lying_declared_size_does_not_bypass_the_limit(owners, store, settings, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "MAX_UPLOAD_SIZE": 10}
    upload = SimpleUploadedFile("a.pdf", pdf)
    upload.size = 5
    with pytest.raises(FileTooLarge):
        services.attach(upload, owner_type="patient", owner_id=owners.alice.pk)
    assert stored_names(store) == []


def test_content_type_allow_lists_use_the_sniffed_type(owners, store, settings, png, pdf):
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOWED_CONTENT_TYPES": ["image/*"]}
    disguised = SimpleUploadedFile("scan.png", pdf, content_type="image/png")
    with pytest.raises(ContentTypeNotAllowed) as exc:
        services.attach(disguised, owner_type="patient", owner_id=owners.alice.pk)
    assert exc.value.content_type == "application/pdf"
    services.attach(png, owner_type="patient", owner_id=owners.alice.pk)

    with attachment_registry.override(OwnerSpec("note", resolve_note, allowed_content_types=["application/pdf"])):
        with pytest.raises(ContentTypeNotAllowed):
            services.attach(png, owner_type="note", owner_id=owners.alice_note.pk)


def test_empty_files_allowed_unless_disabled(owners, store, settings):
    attachment = services.attach(b"", owner_type="patient", owner_id=owners.alice.pk)
    assert attachment.blob.size == 0 and read_all(attachment.blob) == b""
    with attachment_registry.override(OwnerSpec("note", resolve_note, allowed_content_types=["image/*"])):
        empty = services.attach(b"", owner_type="note", owner_id=owners.alice_note.pk)  # no type to refuse
    assert empty.blob.content_type == "application/x-empty"
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "ALLOW_EMPTY_FILES": False}
    with pytest.raises(EmptyFile):
        services.attach(b"", owner_type="patient", owner_id=owners.adam.pk)


@pytest.mark.parametrize("bad", [None, 42, "a string", io.StringIO("text")])
def test_things_that_are_not_files(owners, bad):
    with pytest.raises(InvalidFile):
        services.attach(bad, owner_type="patient", owner_id=owners.alice.pk)


def test_created_by_is_recorded(owners, store, pdf):
    user = get_user_model().objects.create_user("carol")
    attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk, user=user)
    assert Attachment.objects.get(pk=attachment.pk).created_by == user


# -- link --------------------------------------------------------------------


def test_link_to_another_owner_of_the_same_subject(owners, store, pdf):
    first = services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk)
    linked = services.link(first.blob, owner_type="patient", owner_id=owners.alice.pk, tenant=owners.tenant_a)
    assert linked.was_created and linked.blob_id == first.blob_id
    again = services.link(str(first.blob_id), owner_type="patient", owner_id=owners.alice.pk)
    assert again.pk == linked.pk and not again.was_created
    assert Attachment.objects.count() == 2 and len(stored_names(store)) == 1


def test_link_refuses_another_subject(owners, store, pdf):
    blob = services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk).blob
    with pytest.raises(OwnerMismatch):
        services.link(blob, owner_type="patient", owner_id=owners.adam.pk, tenant=owners.tenant_a)
    assert Attachment.objects.count() == 1


def test_link_across_tenants_is_not_found(owners, store, pdf):
    blob = services.attach(pdf, owner_type="note", owner_id=owners.alice_note.pk).blob
    # Bob's clinic cannot see Alice's blob ...
    with pytest.raises(BlobNotFound):
        services.link(blob, owner_type="patient", owner_id=owners.bob.pk, tenant=owners.tenant_b)
    # ... nor can clinic A see Bob.
    with pytest.raises(OwnerNotFound):
        services.link(blob, owner_type="patient", owner_id=owners.bob.pk, tenant=owners.tenant_a)
    # A trusted caller (no tenant) gets the mismatch.
    with pytest.raises(OwnerMismatch):
        services.link(blob, owner_type="patient", owner_id=owners.bob.pk)


@pytest.mark.parametrize("blob_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", 12])
def test_link_unknown_blob(owners, blob_id):
    with pytest.raises(BlobNotFound):
        services.link(blob_id, owner_type="patient", owner_id=owners.alice.pk)


def test_link_applies_the_target_owner_types_limits(owners, store, pdf):
    blob = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk).blob
    with attachment_registry.override(OwnerSpec("note", resolve_note, allowed_content_types=["image/*"])):
        with pytest.raises(ContentTypeNotAllowed):
            services.link(blob, owner_type="note", owner_id=owners.alice_note.pk)


# -- unlink ------------------------------------------------------------------


def test_unlink_keeps_the_blob_for_the_purge(owners, store, pdf):
    attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    services.unlink(attachment)
    assert not Attachment.objects.exists()
    assert Blob.objects.orphans().count() == 1
    assert len(stored_names(store)) == 1


def test_unlink_all_for_owner(owners, store, png, pdf):
    for data in (png, pdf):
        services.attach(data, owner_type="note", owner_id=owners.alice_note.pk)
    services.attach(pdf, owner_type="note", owner_id=owners.alice_note2.pk)
    deleted = []
    attachment_deleted.connect(lambda sender, attachment, **kw: deleted.append(attachment.pk), weak=False)
    try:
        assert services.unlink_all_for_owner("note", owners.alice_note.pk) == 2
    finally:
        attachment_deleted.receivers.clear()
    assert len(deleted) == 2
    assert Attachment.objects.get().owner_id == str(owners.alice_note2.pk)
    # Works for owner types nobody registers any more.
    assert services.unlink_all_for_owner("retired-type", "1") == 0


def test_signals(owners, store, pdf, django_capture_on_commit_callbacks):
    seen = []

    def on_blob(sender, blob, **kw):
        seen.append(("blob", blob.pk))

    def on_link(sender, attachment, user, **kw):
        seen.append(("link", attachment.pk))

    blob_created.connect(on_blob)
    attachment_created.connect(on_link)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            a = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
        with django_capture_on_commit_callbacks(execute=True):
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)  # idempotent: no signal
            b = services.link(a.blob, owner_type="note", owner_id=owners.alice_note.pk)
    finally:
        blob_created.disconnect(on_blob)
        attachment_created.disconnect(on_link)
    # blob_created waits for the commit; attachment_created is sent inside the transaction.
    assert seen == [("link", a.pk), ("blob", a.blob_id), ("link", b.pk)]


def test_blob_created_is_sent_only_once_the_blob_commits(owners, store, pdf, django_capture_on_commit_callbacks):
    seen = []

    def on_blob(sender, blob, **kw):
        seen.append(Blob.objects.filter(pk=blob.pk).exists())

    blob_created.connect(on_blob)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
                raise RuntimeError("the caller's transaction rolls back")
        assert seen == [] and not Blob.objects.exists()  # a receiver never sees a rolled-back blob
        with django_capture_on_commit_callbacks(execute=True):
            services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
            assert seen == []  # not before the commit
    finally:
        blob_created.disconnect(on_blob)
    assert seen == [True]


@pytest.mark.django_db(transaction=True)
def test_a_failing_blob_created_receiver_undoes_nothing(owners, disk_store, pdf, caplog):
    # The receiver runs once the blob is committed (outside any transaction of the caller's
    # here): its failure must not reach the upload's error handling, which would delete the
    # bytes of a committed blob. It is logged, and the upload succeeds.
    def broken(sender, blob, **kwargs):
        raise RuntimeError("the task queue is down")

    blob_created.connect(broken)
    try:
        attachment = services.attach(pdf, owner_type="patient", owner_id=owners.alice.pk)
    finally:
        blob_created.disconnect(broken)
    assert attachment.was_created and "the task queue is down" in caplog.text
    with services.open_blob(Blob.objects.get()) as stream:
        assert b"".join(stream.chunks()) == pdf


def test_blob_url(owners, store, pdf):
    blob = services.attach(SimpleUploadedFile("résumé.pdf", pdf), owner_type="patient", owner_id=owners.alice.pk).blob
    url = services.blob_url(blob)
    if not store.can_sign_urls:
        assert url is None
        return
    import urllib.request

    with urllib.request.urlopen(url) as response:
        assert response.read() == pdf
        assert "attachment" in response.headers["Content-Disposition"]
        assert "r%C3%A9sum%C3%A9.pdf" in response.headers["Content-Disposition"]


def test_errors_share_one_root():
    for exc in (OwnerNotFound, OwnerMismatch, BlobNotFound, FileTooLarge, ContentTypeNotAllowed, InvalidFile):
        assert issubclass(exc, AttachmentError)


def test_non_canonical_ids_are_stored_under_the_canonical_one(owners, store, pdf):
    pk = owners.alice.pk
    for spelling in (f"0{pk}", f"+{pk}", str(pk)):
        services.attach(pdf, owner_type="patient", owner_id=spelling)
    assert list(Attachment.objects.values_list("owner_id", flat=True)) == [str(pk)]
    assert services.unlink_all_for_owner("patient", pk) == 1


def test_resolvers_can_name_the_canonical_id(owners, store, pdf):
    from django_attachments.registry import Owner

    def by_name(owner_id):
        patient = type(owners.alice).objects.filter(name__iexact=owner_id).first()
        return patient and Owner(tenant=str(patient.clinic_id), subject=str(patient.pk), id=patient.name.lower())

    with attachment_registry.override(OwnerSpec("patient_by_name", by_name)):
        services.attach(pdf, owner_type="patient_by_name", owner_id="ALICE")
    assert Attachment.objects.get().owner_id == "alice"


def test_resolver_validation_errors_mean_not_found(owners):
    from django.core.exceptions import ValidationError

    def strict(owner_id):
        raise ValidationError("not a UUID")

    with attachment_registry.override(OwnerSpec("strict", strict)):
        with pytest.raises(OwnerNotFound):
            services.attach(b"x", owner_type="strict", owner_id="abc")


def test_a_slug_resolver_without_an_id_keeps_the_slug(owners, store, pdf):
    from django_attachments.registry import Owner

    def by_name(owner_id):  # finds patients by name only, and returns the model instance
        patient = type(owners.alice).objects.filter(name=owner_id).first()
        return patient and Owner(tenant=str(patient.clinic_id), subject=str(patient.pk), instance=patient)

    with attachment_registry.override(OwnerSpec("patient_by_name", by_name)):
        services.attach(pdf, owner_type="patient_by_name", owner_id="Alice")
        # Stored under what the resolver finds again, so the dangling check does not misread it.
        assert services.find_dangling().found == 0
    assert Attachment.objects.get().owner_id == "Alice"
