"""The H5 chat page that a mini-program opens in <web-view> (also fine in a mobile browser).

The page is a frame; everything else is the bundle `npm run build` writes to
static/build/ (frontend/h5/), talking to the API with a bearer token.
"""

import functools
import hashlib
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_safe

# Only the page's own files run, connect and style; answers can load nothing. No inline
# script: the page's settings travel as JSON (json_script), never as code.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@functools.lru_cache(maxsize=16)
def _file_digest(path: Path, modified_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    """A built file's URL with its content's digest, so a web-view never keeps a stale copy
    of a bundle after a deploy."""
    found = finders.find(name)
    if not found:
        raise ImproperlyConfigured(
            f"static/{name} is missing: run `npm ci && npm run build` (make run does it)."
        )
    path = Path(found)
    return f"{static(name)}?v={_file_digest(path, path.stat().st_mtime_ns)}"


@require_safe
def h5_chat(request: HttpRequest) -> HttpResponse:
    config = {
        "devLogin": settings.CHAT_DEV_LOGIN,
        "questionMaxChars": settings.CHAT_QUESTION_MAX_CHARS,
    }
    context = {
        "config": config,
        "js_url": asset_url("build/h5.js"),
        "css_url": asset_url("build/h5.css"),
    }
    response = render(request, "h5/chat.html", context)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The address may still carry a web-view ticket when the page's files are requested.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
