"""Prepare one contender's database for the peers benchmark; print what its client needs as JSON.

Run by the contender's own Python (its virtualenv), with its settings::

    DJANGO_SETTINGS_MODULE=drf_attachments_project.settings BENCH_WORKDIR=... \\
        python prepare.py --owner drf_attachments_project.Thing

Makes the tables (``migrate --run-syncdb``: the projects' own models have no
migrations), a user without a usable password, a token for it where DRF's
tokens are installed, a logged-in session where sessions are installed, and
one owner row (``--owner``, a model with a ``label``). Prints
``{"token": ..., "session": ..., "owner": pk}`` (absent keys: not installed).
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owner", help="app_label.Model of the owner row to create")
    args = parser.parse_args()

    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("bench-peers")  # no password: nothing hashed, ever
    found: dict[str, object] = {}
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        found["token"] = Token.objects.create(user=user).key
    if apps.is_installed("django.contrib.sessions"):
        client = Client()
        client.force_login(user)
        found["session"] = client.cookies[settings.SESSION_COOKIE_NAME].value
    if args.owner:
        found["owner"] = apps.get_model(args.owner).objects.create(label="peers").pk
    print(json.dumps(found))


if __name__ == "__main__":
    main()
