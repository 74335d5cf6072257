"""The project's settings plus a middleware a user added (tests/support/observed.py)."""

from chatproject.settings import *  # noqa: F403
from chatproject.settings import MIDDLEWARE

MIDDLEWARE = ["tests.support.observed.RequestIdMiddleware", *MIDDLEWARE]
