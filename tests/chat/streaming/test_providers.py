"""Models are configuration: one entry per provider, validated at start-up."""

import asyncio
import itertools

import aiohttp
import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from chat.streaming.aiohttp_stream import _ReadPause
from chat.streaming.model_registry import model_lookup, model_registry
from chat.streaming.providers import clients_close, provider_stream
from chat.streaming.upstream import ProviderError
from tests.conftest import live_models
from tests.support.live import free_port

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
            await clients_close()

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
            await clients_close()

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


async def _provider_error(spec, messages, texts: list[str] | None = None) -> ProviderError:
    """The error that ends the answer; its text before that goes into `texts`."""
    with pytest.raises(ProviderError) as raised:
        await _read_all(
            provider_stream(spec, messages, read_every=0.066), [] if texts is None else texts
        )
    return raised.value


async def _read_all(stream, texts: list[str]) -> None:
    async for batch in stream:
        texts += [chunk.text for chunk in batch]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_refused_connection_is_unavailable_not_a_timeout(transport):
    # Nothing listens on the port: the model service cannot be reached. (The SDK's aiohttp
    # transport calls this a connect *timeout*; the user must not be told to wait.)
    closed = {"name": "closed", "base_url": f"http://127.0.0.1:{free_port()}/v1",
              "api_key": "k", "max_retries": 0, "timeout": 5}  # fmt: skip
    with override_settings(LLM_MODELS=[closed], LLM_HTTP_CLIENT=transport):
        spec = model_lookup("closed")
        try:
            error = await _provider_error(spec, [{"role": "user", "content": "hi"}])
        finally:
            await clients_close()
    assert error.code == "upstream_unavailable"
    assert error.message == "The model service could not be reached."


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_connection_dropped_mid_answer_is_unavailable_not_a_timeout(upstream, transport):
    scenario = upstream.script(tokens=["a ", "b ", "c ", "d "], pace=0.01, drop_after=2)
    messages = [{"role": "user", "content": f"drop {scenario.tag}"}]
    texts: list[str] = []
    with override_settings(LLM_MODELS=live_models(upstream), LLM_HTTP_CLIENT=transport):
        spec = model_lookup("test-model")
        try:
            error = await _provider_error(spec, messages, texts)
        finally:
            await clients_close()
    assert (error.code, error.message) == (
        "upstream_unavailable", "The model service dropped the answer.",
    )  # fmt: skip
    assert "".join(texts) == "a b "  # everything sent before the drop comes before the error


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_silence_past_the_models_timeout_is_a_timeout(upstream, transport):
    scenario = upstream.script(tokens=["a ", "b "], stall_after_tokens=1, stall_mid=2)
    messages = [{"role": "user", "content": f"silent {scenario.tag}"}]
    with override_settings(LLM_MODELS=live_models(upstream), LLM_HTTP_CLIENT=transport):
        spec = model_lookup("test-impatient")  # 0.5 s of silence at most
        try:
            error = await _provider_error(spec, messages)
        finally:
            await clients_close()
    assert (error.code, error.message) == ("upstream_timeout", "The model went silent mid-answer.")


async def test_between_ticks_the_aiohttp_connection_is_paused_then_resumed(upstream):
    # What keeps a window's tokens in the kernel until its tick (one read, one parse): the
    # public ClientResponse.connection.transport. If aiohttp stops exposing it, this fails
    # (the adapter would only sleep, reading ahead packet by packet).
    scenario = upstream.script(tokens=["一", "二", "三"], pace=0.02)
    body = orjson.dumps(
        {
            "model": "m",
            "stream": True,
            "messages": [{"role": "user", "content": f"p {scenario.tag}"}],
        }
    )
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        url = f"{upstream.base_url}/chat/completions"
        async with session.post(url, data=body, headers={"Authorization": "Bearer k"}) as response:
            pause = _ReadPause(response)
            transport = response.connection.transport
            await response.content.readany()
            await pause.until(loop.time() + 0.2)
            paused_then = transport.is_reading()
            await asyncio.sleep(0.3)
            resumed_then = transport.is_reading()
            rest = await response.read()
    assert (paused_then, resumed_then) == (False, True)
    assert rest.endswith(b"data: [DONE]\n\n")  # nothing lost while paused
