"""Reading a JSON request body within a size limit, for every endpoint alike.

Each endpoint has a limit for its body (`API_BODY_MAX_BYTES` unless its view names its own
`body_max_bytes`), and a body is JSON or nothing, so an oversized or hostile body costs a
413 or a 400 before anything else reads it:
- larger than the limit (by Content-Length, or as read for a chunked body): `413
  payload_too_large`;
- not JSON, not UTF-8, nested deeper than orjson's 1,024 levels (Python's json module
  raised RecursionError there), or not an object (an array too where the view's
  `body_json_types` says so): `400 malformed_json`.
The history API's bodies are read and parsed once, by `ApiRequestBodyMiddleware`, which
leaves the result in `request.json_body` for DRF's parser; the stream endpoints (which
skip the middleware stack) call `body_read` and `json_parse` themselves.
"""

from typing import Any

import orjson
from django.http import HttpRequest

from chatproject.errors import ApplicationError

# Every JSON endpoint but the web-view handoff's bulk save takes a few short fields.
API_BODY_MAX_BYTES = 64 * 1024


def payload_too_large(max_bytes: int) -> ApplicationError:
    return ApplicationError(
        "payload_too_large",
        f"The request body is larger than this endpoint's limit of {max_bytes} bytes.",
        status=413,
    )


def malformed_json(message: str = "The request body is not valid JSON.") -> ApplicationError:
    return ApplicationError("malformed_json", message, status=400)


def declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def body_read(request: HttpRequest, *, max_bytes: int) -> bytes:
    """The request's body, refused before reading when its Content-Length is over the limit.

    DATA_UPLOAD_MAX_MEMORY_SIZE is the largest endpoint's limit, so Django's own check on
    `request.body` never fires first.
    """
    if declared_length(request) > max_bytes:
        raise payload_too_large(max_bytes)
    raw = request.body
    if len(raw) > max_bytes:  # a chunked body declares no length
        raise payload_too_large(max_bytes)
    if raw and not declared_length(request):
        # A chunked body: DRF reads a body only when Content-Length says there is one.
        request.META["CONTENT_LENGTH"] = str(len(raw))
    return raw


def json_parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed_json() from None


_JSON_TYPE_NAMES = {dict: "object", list: "array"}


def is_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or request.content_type.endswith("+json")


def json_body_read(request: HttpRequest, *, view: object) -> Any:
    """The request's body within the limit `view` sets, parsed if it is JSON (None if it
    is empty or another type: DRF answers 415 where a view reads such a body)."""
    raw = body_read(request, max_bytes=getattr(view, "body_max_bytes", API_BODY_MAX_BYTES))
    if not raw or not is_json(request):
        return None
    body = json_parse(raw)
    types = getattr(view, "body_json_types", (dict,))
    if not isinstance(body, types):
        names = " or ".join(_JSON_TYPE_NAMES[t] for t in types)
        raise malformed_json(f"The request body must be a JSON {names}.")
    return body
