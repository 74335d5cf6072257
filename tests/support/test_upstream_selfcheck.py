"""Self-checks for FakeUpstream, driven by the real openai.AsyncOpenAI SDK over a socket."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.support.upstream import TAG_RE, FakeUpstream, Scenario

pytestmark = pytest.mark.asyncio

MODEL = "gpt-test-mini"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    yield sdk
    await sdk.close()


def _messages(scenario: Scenario | None) -> list[dict[str, Any]]:
    tag = f" [{scenario.tag}]" if scenario else ""
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"What is the answer?{tag}"},
    ]


async def _open(
    client: openai.AsyncOpenAI, scenario: Scenario | None, **kwargs: Any
) -> openai.AsyncStream[ChatCompletionChunk]:
    return await client.chat.completions.create(
        model=MODEL,
        messages=_messages(scenario),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        **kwargs,
    )


async def _collect_contents(
    stream: openai.AsyncStream[ChatCompletionChunk], into: list[str]
) -> None:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            into.append(chunk.choices[0].delta.content)


async def test_tokens_arrive_in_order_with_usage(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    tokens = ["The", " answer", " is", " 42", "."]
    scenario = upstream.script(tokens=tokens, prompt_tokens=7)
    assert TAG_RE.fullmatch(scenario.tag)

    stream = await _open(client, scenario, max_tokens=64)
    chunks = [chunk async for chunk in stream]

    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert contents[0] == ""  # role chunk
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c for c in contents if c] == tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 5, 12)
    assert all(c.model == MODEL for c in chunks)
    assert isinstance((chunks[1].model_extra or {})["x_emitted_at"], float)

    assert scenario.wait_finished(1.0)
    assert not scenario.aborted.is_set()
    assert scenario.tokens_sent == 5
    body = scenario.last_request
    assert body["model"] == MODEL
    assert body["max_tokens"] == 64
    assert body["stream_options"] == {"include_usage": True}
    assert scenario.tag in body["messages"][-1]["content"]


async def test_pace_spreads_arrival(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    scenario = upstream.script(tokens=["a", "b", "c", "d", "e"], pace=0.08)
    stream = await _open(client, scenario)
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if not arrivals:
                # Streamed, not buffered: the server is still mid-body.
                assert not scenario.finished.is_set()
                assert scenario.tokens_sent < 5
            arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.25
    assert scenario.wait_finished(1.0)


@pytest.mark.parametrize(
    ("status", "error_code", "exc_type"),
    [
        (500, None, openai.InternalServerError),
        (429, None, openai.RateLimitError),
        (400, "content_filter", openai.BadRequestError),
        (400, "data_inspection_failed", openai.BadRequestError),
        (401, None, openai.AuthenticationError),
    ],
)
async def test_status_errors(
    upstream: FakeUpstream,
    client: openai.AsyncOpenAI,
    status: int,
    error_code: str | None,
    exc_type: type[openai.APIStatusError],
) -> None:
    scenario = upstream.script(status=status, error_code=error_code)
    with pytest.raises(exc_type) as info:
        await _open(client, scenario)
    assert info.value.status_code == status
    if error_code:
        assert info.value.code == error_code
    if status == 429:
        assert info.value.response.headers["retry-after"] == "0"
    assert scenario.wait_finished(1.0)
    assert len(scenario.requests) == 1  # max_retries=0: no retry


async def test_stall_before_headers_times_out(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    scenario = upstream.script(stall=5.0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await _open(client, scenario, timeout=0.5)
    assert time.monotonic() - started < 2.0
    # The server notices the client hanging up while it is still stalling.
    assert scenario.wait_aborted(1.0)
    assert scenario.closed_at is not None
    assert not scenario.first_token_sent.is_set()


async def test_stall_after_headers_times_out_while_iterating(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    scenario = upstream.script(stall_after_headers=5.0)
    stream = await _open(client, scenario, timeout=0.5)  # headers arrive: create() returns
    with pytest.raises(openai.APITimeoutError):
        async for _ in stream:
            pass
    assert scenario.wait_aborted(1.0)


async def test_drop_after_raises_connection_error(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    scenario = upstream.script(tokens=["1", "2", "3", "4", "5"], drop_after=3)
    received: list[str] = []
    stream = await _open(client, scenario)
    with pytest.raises(openai.APIConnectionError):
        await _collect_contents(stream, received)
    assert received == ["1", "2", "3"]
    assert scenario.dropped.is_set()
    assert scenario.tokens_sent == 3
    assert not scenario.finished.is_set()
    assert not scenario.aborted.is_set()


async def test_client_close_midway_is_detected(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    before = upstream.aborted_streams
    scenario = upstream.script(tokens=[f"t{i} " for i in range(50)], pace=0.05)
    stream = await _open(client, scenario)
    seen = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
            if seen == 3:
                break
    await stream.close()
    closed = time.monotonic()
    assert scenario.wait_aborted(1.0)
    assert scenario.closed_at is not None
    assert scenario.closed_at - closed < 0.2
    assert not scenario.finished.is_set()
    assert scenario.tokens_sent < 10
    assert upstream.aborted_streams == before + 1


async def test_finish_reason_and_end_without_finish(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    filtered = upstream.script(tokens=["x"], finish_reason="content_filter")
    chunks = [c async for c in await _open(client, filtered)]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "content_filter"

    unfinished = upstream.script(tokens=["x", "y"], end_without_finish=True)
    chunks = [c async for c in await _open(client, unfinished)]
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)
    assert chunks[-1].usage is not None  # usage and [DONE] still arrive
    assert unfinished.wait_finished(1.0)


async def test_untagged_request_uses_default(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    before = len(upstream.default_requests)
    chunks = [c async for c in await _open(client, None)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.default.text
    assert len(upstream.default_requests) == before + 1


async def test_tag_in_multipart_content_and_non_streaming(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    scenario = upstream.script(tokens=["Hi", " there"])
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": f"hello {scenario.tag}"}]}],
        max_completion_tokens=10,
    )
    assert completion.choices[0].message.content == "Hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2
    assert scenario.last_request["max_completion_tokens"] == 10
