"""The stream endpoint end to end: a real daphne process, the real openai SDK, a real
upstream on a loopback port. Each test is something a user of the chat would notice."""

import asyncio
import time

import httpx
import pytest

from chat.models import ChatRecord
from tests.support.live import stream_chat

pytestmark = pytest.mark.django_db(transaction=True)

# Text that breaks naive relays: CJK, a ZWJ emoji family, quotes, newlines, a code fence.
TRICKY_TOKENS = [
    "你好", "，", "世界", "！", "\n", "Emoji: ", "😀", "👨‍👩‍👧", ' "quoted" ', "\\n literal",
    "\n\n", "```python\n", "print('你好')\n", "```", " café ", "ü", "中文结束。",
]  # fmt: skip


async def _saved(record_id: int, *, within: float = 5.0) -> ChatRecord:
    """The record once its answer is saved (status no longer pending/streaming)."""
    deadline = time.monotonic() + within
    while True:
        record = await ChatRecord.objects.aget(pk=record_id)
        if record.is_finished or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


async def test_first_delta_arrives_while_the_model_is_still_generating(
    live_client, owner_token, upstream
):
    tokens = [f"word{i} " for i in range(20)]
    scenario = upstream.script(tokens=tokens, pace=0.05)
    at_first_delta = {}

    def on_event(event, transcript):
        if event.event == "delta" and not at_first_delta:
            at_first_delta["upstream_finished"] = scenario.finished.is_set()
            at_first_delta["tokens_emitted"] = scenario.tokens_sent

    transcript = await stream_chat(
        live_client, owner_token, {"question": f"count {scenario.tag}"}, on_event=on_event
    )

    assert at_first_delta["upstream_finished"] is False
    assert at_first_delta["tokens_emitted"] < len(tokens) // 2
    deltas = transcript.of_type("delta")
    # Spread over the upstream's ~1 s, not delivered in one lump at the end.
    assert deltas[-1].received_at - deltas[0].received_at > 0.5
    assert transcript.text == "".join(tokens)


async def test_saved_answer_equals_the_streamed_text_byte_for_byte(
    live_client, owner_token, upstream
):
    scenario = upstream.script(tokens=TRICKY_TOKENS, pace=0.005, prompt_tokens=42)

    transcript = await stream_chat(
        live_client,
        owner_token,
        {"question": f"tricky {scenario.tag}", "client_id": "msg-1", "terminal": "miniprogram"},
        headers={"Accept-Encoding": "gzip, deflate, br"},
    )

    assert transcript.status_code == 200
    assert transcript.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert transcript.headers["cache-control"] == "no-cache"
    assert transcript.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in transcript.headers  # never gzipped
    assert transcript.text == "".join(TRICKY_TOKENS)
    assert [e.id for e in transcript.events] == list(range(1, len(transcript.events) + 1))
    assert transcript.events[0].event == "start"
    assert transcript.events[-1].event == "done"
    assert transcript.raw.endswith(b"data: [DONE]\n\n")

    done = transcript.done
    record = await ChatRecord.objects.aget(pk=done["record_id"])
    assert record.answer.encode("utf-8") == transcript.text.encode("utf-8")
    assert record.status == ChatRecord.Status.DONE
    assert (record.client_id, record.terminal) == ("msg-1", "miniprogram")
    assert (record.prompt_tokens, record.completion_tokens) == (42, len(TRICKY_TOKENS))
    assert record.first_token_ms is not None
    assert record.finished_at is not None
    assert record.model_name == "test-model"
    assert transcript.start == {
        "type": "start", "record_id": record.pk, "session_id": record.session_id,
        "model": "test-model",
    }  # fmt: skip
    assert done["status"] == "done"
    assert done["session_id"] == record.session_id
    assert done["usage"] == {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59}
    assert done["timings"]["first_token_ms"] == record.first_token_ms


async def test_question_is_saved_before_the_model_answers(live_client, owner_token, upstream):
    scenario = upstream.script(tokens=["ok"], stall=1.0)
    question = f"keep me {scenario.tag}"
    stream = asyncio.create_task(stream_chat(live_client, owner_token, {"question": question}))

    assert await asyncio.to_thread(scenario.wait_started, 5)
    pending = await ChatRecord.objects.aget(question=question)
    assert pending.status == ChatRecord.Status.PENDING
    transcript = await stream
    assert transcript.done["status"] == "done"


async def test_follow_up_questions_send_the_session_history(live_client, owner_token, upstream):
    first_scn = upstream.script(tokens=["Paris", " is the capital."])
    first = await stream_chat(live_client, owner_token, {"question": f"Capital? {first_scn.tag}"})
    second_scn = upstream.script(tokens=["About 2 million."])

    second = await stream_chat(
        live_client,
        owner_token,
        {"question": f"Population? {second_scn.tag}", "session_id": first.done["session_id"]},
    )

    sent = second_scn.last_request
    assert sent["model"] == "upstream-model-id"
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][1:] == [
        {"role": "user", "content": f"Capital? {first_scn.tag}"},
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": f"Population? {second_scn.tag}"},
    ]
    assert second.done["session_id"] == first.done["session_id"]


async def test_hanging_up_mid_answer_cancels_upstream_after_the_grace_period(
    live_client, owner_token, upstream
):
    # The live server's grace period is 1 s (CHAT_DETACH_GRACE_SECONDS); 0 cancels at once.
    tokens = [f"piece{i} " for i in range(100)]
    scenario = upstream.script(tokens=tokens, pace=0.05)

    def hang_up_after_five(event, transcript):
        return event.event == "delta" and len(transcript.of_type("delta")) == 5

    transcript = await stream_chat(
        live_client, owner_token, {"question": f"long {scenario.tag}"}, on_event=hang_up_after_five
    )
    hung_up_at = time.monotonic()

    assert await asyncio.to_thread(scenario.wait_aborted, 4)
    assert 0.9 < scenario.closed_at - hung_up_at < 1.0 + 1.0
    record = await _saved(transcript.start["record_id"])
    assert record.status == ChatRecord.Status.INTERRUPTED
    assert record.answer.startswith(transcript.text)
    relayed = len(record.answer.split(" ")) - 1
    assert 5 <= relayed < len(tokens)
    assert record.answer == "".join(tokens[:relayed])  # exactly what was relayed, whole tokens


@pytest.fixture(scope="module")
def fault_server_for(start_server, daphne_server):
    """The default server reads the upstream over aiohttp (chat/streaming/aiohttp_stream.py);
    one more runs the openai SDK over httpx, the other read path."""
    servers = {"aiohttp": daphne_server}

    def server_for(transport: str):
        if transport not in servers:
            servers[transport] = start_server(LLM_HTTP_CLIENT=transport)
        return servers[transport]

    return server_for


@pytest.mark.parametrize(
    ("script", "model", "code", "partial"),
    [
        ({"status": 500}, "test-model", "upstream_unavailable", ""),
        ({"status": 429}, "test-model", "rate_limited", ""),
        ({"status": 400, "error_code": "data_inspection_failed"}, "test-model", "content_blocked",
         ""),
        ({"status": 401}, "test-model", "upstream_error", ""),
        ({"stall": 3}, "test-impatient", "upstream_timeout", ""),
        ({"stall_after_headers": 3}, "test-impatient", "upstream_timeout", ""),
        ({"stall_after_tokens": 2, "stall_mid": 3}, "test-impatient", "upstream_timeout",
         "a b "),
        ({"drop_after": 3}, "test-model", "upstream_unavailable", "a b c "),
        ({"finish_reason": "content_filter"}, "test-model", "content_blocked", "a b c d e "),
        ({"end_without_finish": True}, "test-model", "upstream_incomplete", "a b c d e "),
    ],
)  # fmt: skip
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_upstream_faults_end_in_an_error_event_and_a_saved_record(
    fault_server_for, owner_token, upstream, script, model, code, partial, transport
):
    scenario = upstream.script(tokens=["a ", "b ", "c ", "d ", "e "], pace=0.01, **script)

    async with httpx.AsyncClient(base_url=fault_server_for(transport).url, timeout=30) as client:
        transcript = await stream_chat(
            client, owner_token, {"question": f"fault {scenario.tag}", "model": model}
        )

    assert transcript.status_code == 200
    (error,) = transcript.of_type("error")
    assert error.data["code"] == code
    assert error.data["message"]
    assert [e.event for e in transcript.events[-2:]] == ["error", "done"]
    assert transcript.saw_done_marker
    assert transcript.done["status"] == "error"
    assert transcript.done["error_code"] == code
    assert transcript.text == partial
    record = await ChatRecord.objects.aget(pk=transcript.done["record_id"])
    assert (record.status, record.error_code, record.answer) == ("error", code, partial)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_model_timeout_limits_silence_not_the_answer_length(
    fault_server_for, owner_token, upstream, transport
):
    # test-impatient gives up after 0.5 s of silence; this answer takes 1.2 s in all.
    scenario = upstream.script(tokens=["慢", "慢", "地", "说", "完"], pace=0.24)

    async with httpx.AsyncClient(base_url=fault_server_for(transport).url, timeout=30) as client:
        transcript = await stream_chat(
            client, owner_token, {"question": f"slow {scenario.tag}", "model": "test-impatient"}
        )

    assert transcript.done["status"] == "done"
    assert transcript.text == "慢慢地说完"


async def test_silence_is_filled_with_ping_comments(live_client, owner_token, upstream):
    # The live server pings after 0.4 s of silence; the upstream is silent for 1.3 s.
    scenario = upstream.script(tokens=["late"], stall_after_headers=1.3)

    transcript = await stream_chat(live_client, owner_token, {"question": f"wait {scenario.tag}"})

    assert transcript.pings >= 2
    assert b": ping\n\n" in transcript.raw
    assert transcript.text == "late"


async def test_two_hundred_concurrent_streams_are_all_saved(daphne_server, owner_token, upstream):
    scenario = upstream.script(tokens=["同", "时", " ok"], pace=0.02)
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(base_url=daphne_server.url, timeout=60, limits=limits) as client:
        transcripts = await asyncio.gather(
            *(
                stream_chat(client, owner_token, {"question": f"n{i} {scenario.tag}"})
                for i in range(200)
            )
        )

    assert [t.done["status"] for t in transcripts] == ["done"] * 200
    saved = await ChatRecord.objects.filter(answer="同时 ok", status="done").acount()
    assert saved == 200
    assert "database is locked" not in daphne_server.log_text()
