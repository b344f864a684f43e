"""Sizes, paths and the environment shared by every part of the suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
CHUNK = MIB
TAIL = 32  # unique bytes at the end of every payload
SOCKET_TIMEOUT = 900  # a guard against a hung server, not a speed limit

DEFAULT_SIZES = [10 * MIB, 100 * MIB, GIB]
DEFAULT_S3_SIZES = [10 * MIB, 100 * MIB]
QUICK_SIZES = [1 * MIB, 5 * MIB]
# 17 MiB: above the S3 store's single-request threshold (16 MiB), so CI runs the multipart path too.
QUICK_S3_SIZES = [1 * MIB, 17 * MIB]
S3_MAX = GIB  # moto holds about twice the object in memory while completing a multipart upload
LIST_COUNTS = [1, 100, 1000]
QUICK_LIST_COUNTS = [1, 10, 100]

# Keep boto3 (here, in the servers and in moto) away from a developer's real AWS configuration.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull + ".missing",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull + ".missing",
}
os.environ.update(AWS_ENV)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
