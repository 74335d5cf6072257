"""Reading an upstream's Server-Sent Events from raw bytes, without per-chunk objects.

The SDK's typed stream builds a pydantic object per token, which is most of what a relay
costs; a relay only needs each event's `data` bytes, parsed once with orjson.
"""

from collections.abc import AsyncIterator


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each event's data (its `data:` lines joined by newlines), as bytes, in order."""
    buffer = b""
    data_lines: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data_lines:
                    yield b"\n".join(data_lines)
                    data_lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
            # Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing a relay needs.
    # As the SSE spec says, an event cut off before its blank line is not dispatched.
