"""The answer streams go through Django's handler like every other request: the
configured middleware (one a user adds included), the request signals, ALLOWED_HOSTS.
Served by the production server (uvicorn) with a middleware added in settings."""

import asyncio
import time

import httpx
import pytest

from tests.support.live import stream_chat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def observed(start_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("observed") / "requests.log"
    log.touch()
    server = start_server(
        software="uvicorn",
        DJANGO_SETTINGS_MODULE="tests.support.observed_settings",
        OBSERVED_REQUESTS_LOG=str(log),
    )
    return server, log


def _lines(log) -> list[str]:
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def _wait_for_line(log, line: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while line not in _lines(log) and time.monotonic() < deadline:
        time.sleep(0.05)


async def test_a_middleware_added_in_settings_runs_on_a_stream(observed, owner_token, upstream):
    server, log = observed
    scenario = upstream.script(tokens=["中", "文"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        transcript = await stream_chat(
            client, owner_token, {"question": f"id {scenario.tag}"},
            headers={"X-Request-Id": "req-7f3a"},
        )  # fmt: skip

    assert transcript.done["status"] == "done"
    assert transcript.text == "中文"
    assert transcript.headers["x-request-id"] == "req-7f3a"
    assert "middleware /api/chat/stream req-7f3a" in _lines(log)


async def test_request_finished_fires_once_the_stream_has_ended(observed, owner_token, upstream):
    server, log = observed
    scenario = upstream.script(tokens=[f"t{i} " for i in range(8)], pace=0.05)
    log.write_text("")
    seen_while_streaming: list[list[str]] = []

    def on_event(event, transcript) -> None:
        if event.event == "delta":
            seen_while_streaming.append(_lines(log))

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        transcript = await stream_chat(
            client, owner_token, {"question": f"signals {scenario.tag}"}, on_event=on_event
        )
    await asyncio.to_thread(_wait_for_line, log, "finished")

    assert transcript.done["status"] == "done"
    assert seen_while_streaming  # deltas came while the answer was generated
    # While the answer streamed the request had started and not finished; then it finished.
    assert all("started /api/chat/stream" in lines for lines in seen_while_streaming)
    assert all("finished" not in lines for lines in seen_while_streaming)
    lines = _lines(log)
    assert lines.index("started /api/chat/stream") < lines.index("finished")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/chat/stream"), ("GET", "/api/chat/records/1/events"),
     ("POST", "/api/chat/records/1/stop")],
)  # fmt: skip
async def test_a_host_not_allowed_is_refused_on_the_stream_endpoints(
    observed, owner_token, method, path
):
    server, _ = observed
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.request(
            method, path, content=b'{"question": "hi"}',
            headers={"Host": "evil.example", "Authorization": f"Bearer {owner_token}",
                     "Content-Type": "application/json"},
        )  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
