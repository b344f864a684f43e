"""13. Authentication per API request: session, token and HTTP Basic, in process (Django's test client).

HTTP Basic sends the password with every request, and Django checks it with
its password hasher every time (PBKDF2 with a million iterations by default):
that is the cost this shows. A session or a token is checked with one
indexed query.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from .config import log
from .context import Context
from .listing import make_listed_owner
from .measure import median
from .report import Table, fmt_ratio

#: The middleware the session needs, around the project's own small stack (the other benchmarks run without).
SESSION_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
PASSWORD = "bench-auth-password-1"


def timed(client: Any, url: str, n: int, **headers: str) -> tuple[int, list[float], Any]:
    for _ in range(2):  # warm-up
        client.get(url, headers=headers)
    times, response = [], None
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - started)
    assert response is not None
    return response.status_code, times, response


def bench_auth(ctx: Context) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import get_hasher
    from django.test import Client, override_settings
    from rest_framework.authtoken.models import Token

    from django_attachments.models import Attachment

    n = 5 if ctx.args.quick else 30
    hasher = get_hasher()
    table = Table(
        "auth",
        "Authentication per API request",
        "`GET /api/attachments/{id}/` of one attachment in process through Django's test client, with each of "
        "the API's authentications: none (the anchor; the benchmark project allows anonymous reads), a session "
        "cookie (`SessionAuthentication`), a token (`TokenAuthentication`, `Authorization: Token …`) and "
        f"HTTP Basic (`BasicAuthentication`), the password checked by Django's default hasher ({hasher.algorithm}, "
        f"{getattr(hasher, 'iterations', '?'):,} iterations). Time is the median of {n} requests after two warm-ups.",
        ["authentication", "ms per request", "vs none", "vs session", "user seen"],
    )
    owner = make_listed_owner(1)
    attachment = Attachment.objects.filter(owner_type="thing", owner_id=owner).get()
    url = f"/api/attachments/{attachment.pk}/"
    user = get_user_model().objects.create_user(f"bench-auth-{owner}", password=PASSWORD)
    token = Token.objects.create(user=user)
    basic = base64.b64encode(f"{user.get_username()}:{PASSWORD}".encode()).decode()
    results: dict[str, float] = {}
    seen: dict[str, bool] = {}
    with override_settings(MIDDLEWARE=SESSION_MIDDLEWARE):
        cases: list[tuple[str, Client, dict[str, str]]] = [
            ("none", Client(), {}),
            ("session", Client(), {}),
            ("token", Client(), {"Authorization": f"Token {token.key}"}),
            ("basic", Client(), {"Authorization": f"Basic {basic}"}),
        ]
        cases[1][1].force_login(user)
        for name, client, headers in cases:
            status, times, response = timed(client, url, n, **headers)
            ctx.check(status == 200, f"auth {name}: status {status}")
            results[name] = median(times) * 1000
            # DRF hands the user it authenticated to Django's request, which the test client keeps.
            seen[name] = response.wsgi_request.user.pk == user.pk
            log(f"  auth {name}: {results[name]:.2f} ms per request")
    for name in ("none", "session", "token", "basic"):
        table.rows.append(
            [name, f"{results[name]:.2f}", fmt_ratio(results[name], results["none"]),
             fmt_ratio(results[name], results["session"]), "yes" if seen[name] else "-"]
        )  # fmt: skip
        if name != "none":
            ctx.check(seen[name], f"auth {name}: the request was not authenticated as the user")
    table.notes.append(
        "user seen: the last request was authenticated as the user; "
        f"the hasher: {type(hasher).__name__}, the project's first in PASSWORD_HASHERS "
        f"({len(settings.PASSWORD_HASHERS)} listed)"
    )
    ctx.target(
        "auth: a token or session costs what no authentication costs (not the password hasher's time)",
        "token <= 1.5x none",
        fmt_ratio(results["token"], results["none"]),
        results["token"] <= 1.5 * results["none"],
    )
    ctx.add(table)
