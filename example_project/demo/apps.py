from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for the example project (the ``seed_demo`` command) and the direct upload page.

    Depends on every example app.
    """

    name = "demo"
    verbose_name = "Demo"
