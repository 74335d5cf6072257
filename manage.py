#!/usr/bin/env python
"""Django's command-line utility."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    # Before Django imports daphne (INSTALLED_APPS): `runserver` then runs on uvloop, as
    # `python -m chatproject.serve_daphne` does.
    from chatproject.serve_daphne import use_uvloop

    use_uvloop()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
