"""Models are configuration: one entry per provider, validated at start-up."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from chat.providers import model_lookup, model_registry

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
