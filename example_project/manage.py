#!/usr/bin/env python
"""Django's command-line utility for the example project.

Run it from this folder so that the example apps (clinics, patients,
treatment_plan) import as top-level packages.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
