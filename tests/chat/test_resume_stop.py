"""Resume after a network drop, stop from anywhere, and processes that die or drain.

With REDIS_URL set (CI's PostgreSQL + Redis pass) `other_server` is a second daphne
process sharing the database and Redis; on the embedded default the same process stands
in for it, so every test runs in both set-ups."""

import asyncio
import signal
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from chat.models import ChatRecord, ChatSession
from tests.support.live import hang_up_after, resume_chat, stream_chat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def other_client(other_server):
    async with httpx.AsyncClient(base_url=other_server.url, timeout=30) as client:
        yield client


async def _record(record_id: int) -> ChatRecord:
    return await ChatRecord.objects.aget(pk=record_id)


async def test_resume_from_every_event_position_yields_exactly_the_missing_suffix(
    live_client, other_client, owner_token, upstream
):
    scenario = upstream.script(tokens=["一", "二 ", "three ", "🙂", "\n", "end"], pace=0.01)
    full = await stream_chat(live_client, owner_token, {"question": f"count {scenario.tag}"})
    record_id = full.done["record_id"]
    original = [(e.id, e.event, e.data) for e in full.events]

    for last_seen in range(len(original) + 1):
        via = "header" if last_seen % 2 else "query"
        resumed = await resume_chat(other_client, owner_token, record_id, last_seen, via=via)
        assert resumed.status_code == 200
        assert [(e.id, e.event, e.data) for e in resumed.events] == original[last_seen:]
        assert resumed.saw_done_marker

    past_the_end = await resume_chat(other_client, owner_token, record_id, len(original) + 7)
    assert past_the_end.events == []
    assert past_the_end.saw_done_marker


async def test_resume_mid_answer_on_the_other_process_continues_live(
    live_client, other_client, owner_token, upstream
):
    tokens = [f"t{i} " for i in range(30)]
    scenario = upstream.script(tokens=tokens, pace=0.04)
    first = await stream_chat(
        live_client, owner_token, {"question": f"drop {scenario.tag}"}, on_event=hang_up_after(5)
    )
    last_seen = first.events[-1].id

    rest = await resume_chat(other_client, owner_token, first.start["record_id"], last_seen)

    assert [e.id for e in first.events + rest.events] == list(range(1, rest.events[-1].id + 1))
    assert first.text + rest.text == "".join(tokens)
    assert rest.done["status"] == "done"
    assert not scenario.finished.is_set() or scenario.first_token_sent.is_set()
    assert not scenario.aborted.is_set()  # the drop did not cancel the answer
    record = await _record(first.start["record_id"])
    assert (record.status, record.answer) == ("done", "".join(tokens))


async def test_stop_from_the_other_process_ends_generation_within_a_second(
    live_client, other_client, owner_token, other_token, upstream
):
    tokens = [f"w{i} " for i in range(200)]
    scenario = upstream.script(tokens=tokens, pace=0.03)
    five_deltas = asyncio.Event()

    def note_progress(event, transcript):
        if len(transcript.of_type("delta")) == 5:
            five_deltas.set()

    reading = asyncio.create_task(
        stream_chat(live_client, owner_token, {"question": f"stop {scenario.tag}"},
                    on_event=note_progress)
    )  # fmt: skip
    await asyncio.wait_for(five_deltas.wait(), 10)
    record_id = (await ChatRecord.objects.aget(question=f"stop {scenario.tag}")).pk

    stranger = await other_client.post(
        f"/api/chat/records/{record_id}/stop", headers={"Authorization": f"Bearer {other_token}"}
    )
    stop_sent_at = time.monotonic()
    stopped = await other_client.post(
        f"/api/chat/records/{record_id}/stop", headers={"Authorization": f"Bearer {owner_token}"}
    )
    transcript = await reading

    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "record_not_found"
    assert stopped.status_code == 200
    assert stopped.json() == {"record_id": record_id, "status": "stopped"}
    assert transcript.done["status"] == "stopped"
    assert transcript.events[-1].received_at - stop_sent_at < 1.0
    assert await asyncio.to_thread(scenario.wait_aborted, 1.0)
    assert scenario.closed_at - stop_sent_at < 1.0
    record = await _record(record_id)
    assert (record.status, record.answer) == ("stopped", transcript.text)
    assert 5 <= len(record.answer.split()) < len(tokens)
    again = await other_client.post(
        f"/api/chat/records/{record_id}/stop", headers={"Authorization": f"Bearer {owner_token}"}
    )
    assert again.json() == {"record_id": record_id, "status": "stopped"}


async def test_no_client_for_the_grace_period_cancels_the_upstream(
    live_client, other_client, owner_token, upstream
):
    tokens = [f"g{i} " for i in range(200)]
    scenario = upstream.script(tokens=tokens, pace=0.03)
    aborted_before = upstream.aborted_streams

    gone = await stream_chat(
        live_client, owner_token, {"question": f"grace {scenario.tag}"}, on_event=hang_up_after(3)
    )
    hung_up_at = time.monotonic()

    assert await asyncio.to_thread(scenario.wait_aborted, 5)
    assert scenario.closed_at - hung_up_at >= 0.9  # the 1 s grace was given
    assert upstream.aborted_streams == aborted_before + 1
    record_id = gone.start["record_id"]
    replay = await resume_chat(other_client, owner_token, record_id, gone.events[-1].id)
    assert replay.done["status"] == "interrupted"
    record = await _record(record_id)
    assert record.status == "interrupted"
    assert record.answer == gone.text + replay.text


async def test_resume_and_stop_refuse_bad_requests(live_client, owner, owner_token, other_token):
    session = await ChatSession.objects.acreate(owner=owner)
    finished = await ChatRecord.objects.acreate(
        session=session, owner=owner, question="old", answer="kept", status="done"
    )
    orphan = await ChatRecord.objects.acreate(
        session=session, owner=owner, question="lost", status="streaming"
    )
    auth = {"Authorization": f"Bearer {owner_token}"}
    events = f"/api/chat/records/{finished.pk}/events"

    cases = [
        (await live_client.get(events), 401, "not_authenticated"),
        (await live_client.get(events, headers={"Authorization": f"Bearer {other_token}"}), 404,
         "record_not_found"),
        (await live_client.get(events, headers={**auth, "Last-Event-ID": "x"}), 400,
         "invalid_last_event_id"),
        (await live_client.post(events, headers=auth), 405, "method_not_allowed"),
        (await live_client.get(events, headers=auth), 410, "replay_expired"),
        (await live_client.get(f"/api/chat/records/{orphan.pk}/events", headers=auth), 410,
         "stream_lost"),
        (await live_client.get(f"/api/chat/records/{finished.pk}/stop", headers=auth), 405,
         "method_not_allowed"),
        (await live_client.post("/api/chat/records/999999/stop", headers=auth), 404,
         "record_not_found"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    done = await live_client.post(f"/api/chat/records/{finished.pk}/stop", headers=auth)
    assert done.json() == {"record_id": finished.pk, "status": "done"}


async def test_a_deleted_sessions_records_are_gone_for_resume_and_stop(
    live_client, owner, owner_token
):
    session = await ChatSession.objects.acreate(owner=owner, is_deleted=True)
    record = await ChatRecord.objects.acreate(
        session=session, owner=owner, question="gone", answer="gone", status="done"
    )
    auth = {"Authorization": f"Bearer {owner_token}"}

    for response in (
        await live_client.get(f"/api/chat/records/{record.pk}/events", headers=auth),
        await live_client.post(f"/api/chat/records/{record.pk}/stop", headers=auth),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "record_not_found"


async def test_sigkill_mid_stream_leaves_a_record_the_reaper_closes(
    start_server, live_client, owner_token, upstream
):
    # A long grace period: the process must die with the answer still open, not close it
    # itself as `interrupted` after the hang-up below.
    doomed_server = start_server(CHAT_DETACH_GRACE_SECONDS="30")
    slow = upstream.script(tokens=[f"k{i} " for i in range(300)], pace=0.03)
    alive = upstream.script(tokens=[f"a{i} " for i in range(300)], pace=0.03)
    survivor = asyncio.create_task(
        stream_chat(live_client, owner_token, {"question": f"alive {alive.tag}"})
    )
    async with httpx.AsyncClient(base_url=doomed_server.url, timeout=30) as client:
        seen = await stream_chat(
            client, owner_token, {"question": f"doomed {slow.tag}"}, on_event=hang_up_after(1)
        )
        await asyncio.sleep(1.0)  # a few checkpoints (every 0.3 s) go by
        doomed_server.send_signal(signal.SIGKILL)
        assert doomed_server.wait_exit(5) is not None
    record_id = seen.start["record_id"]
    checkpoint = (await _record(record_id)).answer
    await asyncio.sleep(2.5)  # the dead process's heartbeat goes stale; the live one's not

    await sync_to_async(call_command)("reap_streams", "--stale-after", "2")

    record = await _record(record_id)
    assert (record.status, record.error_code) == ("interrupted", "server_lost")
    assert record.answer == checkpoint
    assert len(record.answer.split()) >= 10  # up to the last checkpoint before the kill
    assert "".join(f"k{i} " for i in range(300)).startswith(record.answer)
    live = await ChatRecord.objects.aget(question=f"alive {alive.tag}")
    assert live.status == "streaming"  # a live long stream is never reaped
    assert (await survivor).done["status"] == "done"


@pytest.mark.parametrize("software", ["daphne", "uvicorn"])
async def test_sigterm_refuses_new_streams_and_drains_running_ones(
    start_server, owner_token, upstream, software
):
    server = start_server(software=software, CHAT_DRAIN_SECONDS="1.5")
    short = upstream.script(tokens=[f"s{i} " for i in range(15)], pace=0.04)
    long = upstream.script(tokens=[f"l{i} " for i in range(300)], pace=0.03)
    started = asyncio.Event()

    def mark_started(event, transcript):
        if event.event == "delta":
            started.set()

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        short_task = asyncio.create_task(
            stream_chat(client, owner_token, {"question": f"short {short.tag}"},
                        on_event=mark_started)
        )  # fmt: skip
        long_task = asyncio.create_task(
            stream_chat(client, owner_token, {"question": f"long {long.tag}"})
        )
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.1)
        server.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        refused = await client.post(
            "/api/chat/stream",
            json={"question": "too late"},
            headers={"Authorization": f"Bearer {owner_token}"},
        )
        short_done, long_done = await short_task, await long_task

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "server_draining"
    assert short_done.done["status"] == "done"
    assert long_done.done["status"] == "interrupted"
    assert await asyncio.to_thread(server.wait_exit, 10) is not None
    long_record = await _record(long_done.done["record_id"])
    assert (long_record.status, long_record.answer) == ("interrupted", long_done.text)
    assert not await ChatRecord.objects.filter(question="too late").aexists()
    # The model clients' connections are closed, not left to the collector to complain.
    assert "Unclosed" not in server.log_text()


async def test_a_refused_resume_is_logged_once(start_server, owner, owner_token):
    # With DEBUG on, Django's own console handler printed each warning a second time.
    server = start_server(DEBUG="1")
    session = await ChatSession.objects.acreate(owner=owner)
    finished = await ChatRecord.objects.acreate(
        session=session, owner=owner, question="old", answer="kept", status="done"
    )
    path = f"/api/chat/records/{finished.pk}/events"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.get(path, headers={"Authorization": f"Bearer {owner_token}"})

    assert response.status_code == 410
    logged = [line for line in server.log_text().splitlines() if f"Gone: {path}" in line]
    assert len(logged) == 1, logged
    assert "WARNING django.request" in logged[0]
