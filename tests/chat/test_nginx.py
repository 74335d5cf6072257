"""Through real nginx (deploy/nginx.conf) to two server processes: the typing effect must
survive the proxy, with nothing buffered or compressed on the way."""

from urllib.parse import urlsplit

import httpx
import pytest

from chat.models import ChatRecord
from tests.support.live import resume_chat, stream_chat
from tests.support.nginx import Nginx, nginx_available

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not nginx_available(), reason="nginx not installed (make test installs it)"),
]


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def nginx(request, start_server, daphne_server, other_server, tmp_path_factory):
    """nginx in front of two processes of each server software docs/deploy.md names (one
    process on the embedded default, which keeps its events in memory)."""
    if request.param == "daphne":
        servers = (daphne_server, other_server)
    else:
        first = start_server(software="uvicorn")
        servers = (
            first,
            start_server(software="uvicorn") if other_server is not daphne_server else first,
        )
    backends = sorted({urlsplit(s.url).netloc for s in servers})
    proxy = Nginx(backends=backends, workdir=tmp_path_factory.mktemp("nginx"))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
async def proxied(nginx):
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as client:
        yield client


async def test_deltas_pass_through_nginx_as_they_are_generated(proxied, owner_token, upstream):
    tokens = [f"词{i} " for i in range(20)]
    scenario = upstream.script(tokens=tokens, pace=0.05)
    at_first_delta = {}

    def on_event(event, transcript):
        if event.event == "delta" and not at_first_delta:
            at_first_delta["upstream_finished"] = scenario.finished.is_set()

    transcript = await stream_chat(
        proxied,
        owner_token,
        {"question": f"via nginx {scenario.tag}"},
        headers={"Accept-Encoding": "gzip"},
        on_event=on_event,
    )

    assert at_first_delta == {"upstream_finished": False}
    deltas = transcript.of_type("delta")
    assert deltas[-1].received_at - deltas[0].received_at > 0.5
    assert "content-encoding" not in transcript.headers
    assert transcript.text == "".join(tokens)
    record = await ChatRecord.objects.aget(pk=transcript.done["record_id"])
    assert record.answer == transcript.text


async def test_pings_keep_a_quiet_stream_open_through_nginx(proxied, owner_token, upstream):
    scenario = upstream.script(tokens=["终于"], stall_after_headers=1.3)

    transcript = await stream_chat(proxied, owner_token, {"question": f"quiet {scenario.tag}"})

    assert transcript.pings >= 2
    assert transcript.text == "终于"


async def test_resume_through_nginx_lands_on_either_process(proxied, owner_token, upstream):
    scenario = upstream.script(tokens=[f"r{i} " for i in range(8)], pace=0.01)
    full = await stream_chat(proxied, owner_token, {"question": f"resume {scenario.tag}"})

    for last_seen in (0, 3, len(full.events)):
        resumed = await resume_chat(proxied, owner_token, full.done["record_id"], last_seen)
        assert [e.id for e in resumed.events] == [e.id for e in full.events[last_seen:]]


async def test_the_bulk_saves_documented_limit_holds_through_nginx(proxied, owner_token):
    headers = {"Authorization": f"Bearer {owner_token}", "Content-Type": "application/json"}
    nearly_8_mib = b'{"items": []}' + b" " * (8 * 2**20 - 13)
    past_nginx = nearly_8_mib + b" " * (2 * 2**20)

    accepted = await proxied.post("/api/chat/records/bulk", content=nearly_8_mib, headers=headers)
    refused = await proxied.post("/api/chat/records/bulk", content=past_nginx, headers=headers)

    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"


async def test_the_metrics_are_not_served_through_nginx(proxied):
    response = await proxied.get("/metrics")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
