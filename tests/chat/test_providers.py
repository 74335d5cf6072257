"""Models are configuration: one entry per provider, validated at start-up."""

import httpx2
import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from chat.providers import UpstreamBody, _client_for, _request_body, model_lookup, model_registry
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
                await body.hold(0.01)  # paused and resumed: nothing is lost
        finally:
            await body.aclose()
            await client.close()
    texts = [orjson.loads(data) for data in SSEDataParser().feed(raw)[:-1]]
    assert (
        "".join(t["choices"][0]["delta"].get("content", "") for t in texts if t["choices"])
        == "一二"
    )
