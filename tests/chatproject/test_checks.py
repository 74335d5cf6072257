"""Django's system checks: what every `manage.py` command prints before it runs."""

from django.core.management import call_command


def test_the_project_passes_djangos_checks_without_a_warning():
    call_command("check", fail_level="WARNING")  # raises SystemCheckError otherwise
