import pytest

from chat.streaming.sse_reader import SSEDataParser

STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"a": "\xe4\xbd\xa0\xe5\xa5\xbd"}\n\n'
    b"event: message\r\nid: 7\r\ndata: first line\r\ndata:second line\r\n\r\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [b'{"a": "\xe4\xbd\xa0\xe5\xa5\xbd"}', b"first line\nsecond line", b"[DONE]"]


def _collect(chunks: list[bytes]) -> list[bytes]:
    parser = SSEDataParser()
    return [data for chunk in chunks for data in parser.feed(chunk)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_survive_any_split_even_inside_a_utf8_character(size):
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert _collect(chunks) == EXPECTED


def test_one_read_carrying_several_events_returns_them_all_in_order():
    parser = SSEDataParser()
    assert parser.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4") == [b"1", b"2", b"3"]
    assert parser.feed(b"\n\n") == [b"4"]


def test_an_event_cut_off_before_its_blank_line_is_dropped_as_the_spec_says():
    assert _collect([b"data: whole\n\ndata: cut"]) == [b"whole"]
