"""What a Django user adds to a project, for a live server to run: a request-id middleware
and receivers of the request signals that write what they saw to a file
(`OBSERVED_REQUESTS_LOG`), so a test can tell they ran on a stream, and when.

Used through `tests.support.observed_settings` (DJANGO_SETTINGS_MODULE of that server)."""

import os
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import request_finished, request_started
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase


class RequestIdMiddleware:
    """The client's `X-Request-Id`, or a new one, echoed on the response."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        _note(f"middleware {request.path} {request_id}")
        response = await self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


def _note(line: str) -> None:
    # Only the live server started with a log observes; a process that merely imported
    # this module (Django's checks import every middleware named in settings) does not.
    path = os.environ.get("OBSERVED_REQUESTS_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{time.time():.6f} {line}\n")


@receiver(request_started)
def _request_started(sender: object, scope: dict | None = None, **kwargs: object) -> None:
    _note(f"started {(scope or {}).get('path', '?')}")


@receiver(request_finished)
def _request_finished(sender: object, **kwargs: object) -> None:
    _note("finished")
