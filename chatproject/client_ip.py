"""The client's address: the peer's, or behind nginx (`BEHIND_PROXY=1`) the one nginx saw.

nginx appends the address it saw to `X-Forwarded-For` (deploy/nginx.conf), so the last
entry is the one to trust; entries before it come from the client and may be anything.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")
