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
