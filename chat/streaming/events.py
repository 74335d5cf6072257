"""The wire format: Server-Sent Events frames, one JSON object per event.

Every frame ends with a blank line (a parser drops an unterminated last event). Text
travels inside JSON, so newlines, quotes, emoji and CJK need no escaping tricks, and
orjson writes UTF-8 directly (Chinese text is not inflated into \\u escapes).
"""

import orjson

PING_FRAME = b": ping\n\n"
DONE_FRAME = b"data: [DONE]\n\n"

# Event types.
START = "start"
DELTA = "delta"
ERROR = "error"
DONE = "done"


def event_frame(seq: int, event_type: str, payload: dict) -> bytes:
    data = orjson.dumps({"type": event_type, **payload})
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event_type.encode(), data)


def done_payload(
    *,
    record_id: int,
    session_id: int,
    status: str,
    finish_reason: str | None,
    error_code: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    first_token_ms: int | None,
    total_ms: int | None,
) -> dict:
    """The `done` event's fields (docs/protocol.md §3)."""
    known = prompt_tokens is not None and completion_tokens is not None
    return {
        "record_id": record_id,
        "session_id": session_id,
        "status": status,
        "finish_reason": finish_reason,
        "error_code": error_code or None,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens if known else None,
        },
        "timings": {"first_token_ms": first_token_ms, "total_ms": total_ms},
    }


def delta_text(frame: bytes) -> str:
    """The text a frame adds to the answer: a delta's `text`, "" for any other frame."""
    head, _, data = frame.partition(b"\ndata: ")
    if not head.endswith(b"\nevent: " + DELTA.encode()):
        return ""
    return orjson.loads(data)["text"]
