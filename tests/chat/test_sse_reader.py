import pytest

from chat.sse_reader import sse_data

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"a": "\xe4\xbd\xa0\xe5\xa5\xbd"}\n\n'
    b"event: message\r\nid: 7\r\ndata: first line\r\ndata:second line\r\n\r\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [b'{"a": "\xe4\xbd\xa0\xe5\xa5\xbd"}', b"first line\nsecond line", b"[DONE]"]


async def _collect(chunks: list[bytes]) -> list[bytes]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [data async for data in sse_data(source())]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
async def test_events_survive_any_split_even_inside_a_utf8_character(size):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await _collect(chunks) == EXPECTED


async def test_an_event_cut_off_before_its_blank_line_is_dropped_as_the_spec_says():
    assert await _collect([b"data: whole\n\ndata: cut"]) == [b"whole"]
