"""Models are configuration: one entry per provider, validated at start-up."""

import asyncio
import collections
import contextlib
import itertools
import os
import statistics
import time
import warnings

import httpx2
import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from chat.pacing import EARLIEST
from chat.providers import (
    UpstreamBody,
    _client_for,
    _request_body,
    model_lookup,
    model_registry,
    provider_stream,
)
from chat.sse_reader import SSEDataParser
from tests.conftest import live_models

QWEN = {
    "name": "qwen",
    "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "api_key": "sk-q",
    "model": "qwen-plus",
    "display_name": "通义千问",
    "max_tokens": 1024,
    "timeout": 30,
}
DEEPSEEK = {"base_url": "https://api.deepseek.com/v1", "api_key": "sk-d", "model": "deepseek-chat"}


def test_models_from_a_json_list():
    with override_settings(LLM_MODELS=[QWEN], LLM_API_KEY="", LLM_DEFAULT_MODEL=""):
        spec = model_lookup("qwen")
        assert (spec.model_id, spec.display_name, spec.max_tokens, spec.timeout) == (
            "qwen-plus", "通义千问", 1024, 30.0,
        )  # fmt: skip
        assert model_lookup(None) is spec
        assert model_lookup("offline-demo") is None


def test_models_from_a_json_object_and_the_single_model_variables():
    with override_settings(
        LLM_MODELS={"deepseek": DEEPSEEK},
        LLM_API_KEY="sk-openai",
        LLM_MODEL="gpt-4o-mini",
        LLM_BASE_URL="https://api.openai.com/v1",
        LLM_DEFAULT_MODEL="gpt-4o-mini",
    ):
        assert list(model_registry()) == ["gpt-4o-mini", "deepseek"]
        assert model_lookup("deepseek").base_url == "https://api.deepseek.com/v1"
        assert model_lookup(None).api_key == "sk-openai"


def test_api_key_may_come_from_another_variable(monkeypatch):
    monkeypatch.setenv("MOONSHOT_KEY", "sk-moon")
    entry = {"name": "kimi", "api_key_env": "MOONSHOT_KEY", "model": "moonshot-v1-8k"}
    with override_settings(LLM_MODELS=[entry], LLM_API_KEY="", LLM_DEFAULT_MODEL=""):
        assert model_lookup("kimi").api_key == "sk-moon"


@pytest.mark.parametrize(
    "models",
    [[{"model": "no-name"}], "not a list", [{"name": "x", "timeout": "soon"}]],
)
def test_bad_model_configuration_stops_the_server(models):
    with (
        override_settings(LLM_MODELS=models, LLM_API_KEY="", LLM_DEFAULT_MODEL=""),
        pytest.raises(ImproperlyConfigured),
    ):
        model_registry()


def test_default_model_must_exist():
    with (
        override_settings(LLM_MODELS=[QWEN], LLM_API_KEY="", LLM_DEFAULT_MODEL="gpt-9"),
        pytest.raises(ImproperlyConfigured),
    ):
        model_registry()


@pytest.mark.parametrize(("transport", "from_aiohttp"), [("aiohttp", True), ("httpx", False)])
async def test_the_aiohttp_transport_is_read_straight_from_aiohttp(
    upstream, transport, from_aiohttp
):
    # The fast path reaches into the SDK's transport; an SDK upgrade that moves things
    # must fail here rather than fall back to the slower path unnoticed.
    scenario = upstream.script(tokens=["一", "二"])
    messages = [{"role": "user", "content": f"path {scenario.tag}"}]
    with override_settings(LLM_MODELS=live_models(upstream), LLM_HTTP_CLIENT=transport):
        spec = model_lookup("test-model")
        client = _client_for(spec)
        response = await client.post(
            "/chat/completions", body=_request_body(spec, messages), cast_to=httpx2.Response,
            stream=True,
        )  # fmt: skip
        try:
            body = UpstreamBody(response)
            assert body.straight_from_aiohttp is from_aiohttp
            raw = b""
            while chunk := await body.read():
                raw += chunk
                # Paused and resumed: nothing is lost.
                await body.hold_until(asyncio.get_running_loop().time() + 0.01)
        finally:
            await body.aclose()
            await client.close()
    texts = [orjson.loads(data) for data in SSEDataParser().feed(raw)[:-1]]
    assert (
        "".join(t["choices"][0]["delta"].get("content", "") for t in texts if t["choices"])
        == "一二"
    )


async def test_answers_are_read_once_per_window_on_ticks_they_share(upstream):
    # Two answers at ~30 tokens/s, 66 ms windows; the second starts once the first is
    # streaming, at an unrelated moment.
    window, a_streams = 0.066, asyncio.Event()
    with override_settings(LLM_MODELS=live_models(upstream)):
        spec = model_lookup("test-model")
        try:
            (times_a, text_a), (times_b, text_b) = await asyncio.gather(
                _batch_times(upstream, spec, window, "a", streaming=a_streams),
                _batch_times(upstream, spec, window, "b", start_after=a_streams),
            )
        finally:
            await _client_for(spec).close()

    assert text_a == "".join(f"a{i} " for i in range(40))
    assert text_b == "".join(f"b{i} " for i in range(40))
    for times in (times_a, times_b):
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= window / 2 - 0.005  # never two events close together
        assert len(times) <= (times[-1] - times[0]) / window + 2  # at most one per window
        assert len(times) >= 15  # ~1.3 s of answer: about 20 windows
        # After the first (immediate) read, every read is on a tick of one grid of the
        # window for the whole process: one wake-up of the event loop serves both answers.
        on_ticks = [t for t in times[1:] if t % window < 0.01]
        assert len(on_ticks) >= 0.75 * len(times[1:])
    assert times_b[1] - times_a[0] > 0.1  # b started well after a


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_model_request_carries_the_key_and_no_sdk_telemetry(upstream, transport):
    # The SDK would add nine X-Stainless-* headers (OS, architecture, Python and SDK
    # versions, retry count, timeout) to every question: the provider needs none of them.
    scenario = upstream.script(tokens=["好"])
    messages = [{"role": "user", "content": f"headers {scenario.tag}"}]
    with override_settings(LLM_MODELS=live_models(upstream), LLM_HTTP_CLIENT=transport):
        spec = model_lookup("test-model")
        try:
            text = "".join(
                [c.text async for batch in provider_stream(spec, messages) for c in batch]
            )
        finally:
            await _client_for(spec).close()

    assert text == "好"
    (headers,) = [{k.lower(): v for k, v in h.items()} for h in scenario.request_headers]
    assert headers["authorization"] == "Bearer test-key"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert [name for name in headers if name.startswith("x-stainless")] == []


async def _batch_times(upstream, spec, window, name, *, streaming=None, start_after=None):
    """When each batch with text arrived, and the answer's text."""
    if start_after is not None:
        await start_after.wait()
        await asyncio.sleep(0.023)
    scenario = upstream.script(tokens=[f"{name}{i} " for i in range(40)], pace=1 / 30)
    messages = [{"role": "user", "content": f"pace {scenario.tag}"}]
    loop, times, text = asyncio.get_running_loop(), [], ""
    async for batch in provider_stream(spec, messages, read_every=window):
        if any(chunk.text for chunk in batch):
            times.append(loop.time())
            text += "".join(chunk.text for chunk in batch)
            if streaming is not None and len(times) == 3:
                streaming.set()
    return times, text


async def test_a_lone_answer_is_read_as_its_window_fills(upstream):
    # The only answer in the process, ~30 tokens/s, 66 ms windows. Once its pace is known
    # (a few reads on the ticks), each read comes when the token completing its window
    # arrives, woken by the data, instead of on a tick up to a window later.
    window = 0.066
    scenario = upstream.script(tokens=[f"t{i} " for i in range(45)], pace=1 / 30)
    messages = [{"role": "user", "content": f"alone {scenario.tag}"}]
    reads: list[tuple[float, str]] = []
    with override_settings(LLM_MODELS=live_models(upstream)):
        spec = model_lookup("test-model")
        try:
            async for batch in provider_stream(spec, messages, read_every=window):
                if text := "".join(chunk.text for chunk in batch):
                    reads.append((time.monotonic(), text))
        finally:
            await _client_for(spec).close()

    assert "".join(text for _, text in reads) == scenario.text
    # How long after its last token was sent each read came.
    delays, tokens_read = [], 0
    for read_at, text in reads:
        tokens_read += text.count(" ")
        delays.append(read_at - scenario.token_sent_at[tokens_read - 1])
    assert statistics.median(delays[5:]) < 0.005  # here ~0.2 ms; on the ticks 15-17 ms
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(reads)]
    assert min(gaps[4:]) >= EARLIEST * window - 0.005  # still never two close together
    assert statistics.mean(gaps[4:]) >= 0.9 * window  # about one read per window


async def _open_body(upstream, spec, tokens, pace):
    scenario = upstream.script(tokens=tokens, pace=pace)
    messages = [{"role": "user", "content": f"gate {scenario.tag}"}]
    response = await _client_for(spec).post(
        "/chat/completions", body=_request_body(spec, messages), cast_to=httpx2.Response,
        stream=True,
    )  # fmt: skip
    return scenario, UpstreamBody(response)


async def _read_to_end(body, raw=b""):
    while chunk := await body.read():
        raw += chunk
    await body.aclose()
    return "".join(
        event["choices"][0]["delta"].get("content", "")
        for event in map(orjson.loads, SSEDataParser().feed(raw)[:-1])
        if event["choices"]
    )


async def test_a_gated_read_comes_at_its_latest_when_too_little_arrives(upstream):
    loop = asyncio.get_running_loop()
    with override_settings(LLM_MODELS=live_models(upstream)):
        spec = model_lookup("test-model")
        try:
            scenario, body = await _open_body(upstream, spec, ["一", "二", "三"], 0.02)
            first = await body.read()
            assert body.can_gate
            gated_at = loop.time()
            # Far more than the rest of the answer, which is all in well before the latest.
            body.gate(60_000, not_before=gated_at, latest=gated_at + 0.3)
            second = await asyncio.wait_for(body.read(), 3)
            waited = loop.time() - gated_at
            text = await _read_to_end(body, first + second)
        finally:
            await _client_for(spec).close()
    assert 0.28 <= waited < 1.5
    assert text == scenario.text


async def test_a_read_after_a_gated_one_is_not_gated(upstream):
    # The low-water mark goes with the read it was set for: the next read, and the next
    # answer on the pooled connection, get each byte as it comes.
    loop = asyncio.get_running_loop()
    with override_settings(LLM_MODELS=live_models(upstream)):
        spec = model_lookup("test-model")
        try:
            scenario, body = await _open_body(upstream, spec, list("abcdef"), 0.05)
            raw = await body.read()
            while b'"a"' not in raw:
                raw += await body.read()
            now = loop.time()
            body.gate(300, not_before=now, latest=now + 5)  # met by two tokens (~220 B each)
            gated = await body.read()
            ungated = await body.read()
            text = await _read_to_end(body, raw + gated + ungated)
        finally:
            await _client_for(spec).close()
    assert gated.count(b'"content"') == 2
    assert ungated.count(b'"content"') == 1  # not held for a second token
    assert text == scenario.text


async def test_gated_answers_close_what_they_open(upstream):
    # The low-water mark is set through a duplicate of the connection's descriptor: each
    # answer closes its own (an unclosed one would also keep a dropped connection open),
    # and the pooled connection serves the next answer as before.
    window = 0.066
    sockets_held_twice = []
    with override_settings(LLM_MODELS=live_models(upstream)):
        spec = model_lookup("test-model")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                for _ in range(3):
                    scenario = upstream.script(tokens=[f"d{i} " for i in range(20)], pace=1 / 30)
                    messages = [{"role": "user", "content": f"close {scenario.tag}"}]
                    text = ""
                    async for batch in provider_stream(spec, messages, read_every=window):
                        text += "".join(chunk.text for chunk in batch)
                    assert text == scenario.text
                    sockets_held_twice.append(_sockets_held_twice())
        finally:
            await _client_for(spec).close()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert sockets_held_twice == [[], [], []]


def _sockets_held_twice() -> list[str]:
    """Sockets this process holds under more than one descriptor: a duplicate left open.
    (The process's other descriptors come and go with whatever earlier tests left
    running, so their count proves nothing.)"""
    held = collections.Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                held[target] += 1
    return sorted(target for target, count in held.items() if count > 1)
