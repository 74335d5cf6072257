"""Reading an upstream's Server-Sent Events from raw bytes, without per-chunk objects.

The SDK's typed stream builds a pydantic object per token, which is most of what a relay
costs; a relay only needs each event's `data` bytes, parsed once with orjson. The parser
is fed whatever one socket read returned and hands back every event it completed, so a
read carrying several tokens costs one pass, not one trip through async iterators each.
"""


class SSEDataParser:
    """Incremental: `feed` bytes split anywhere (mid-line, mid-UTF-8 character)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data_lines: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data (its `data:` lines joined by newlines) of each event this chunk ends."""
        completed: list[bytes] = []
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if self._data_lines:
                    completed.append(b"\n".join(self._data_lines))
                    self._data_lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data_lines.append(value[1:] if value.startswith(b" ") else value)
            # Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing a relay needs.
        # As the SSE spec says, an event cut off before its blank line is never dispatched.
        return completed
