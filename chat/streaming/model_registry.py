"""The models a client may ask for, by name, from configuration (LLM_MODELS, or
LLM_API_KEY / LLM_MODEL), plus the offline demo.

OpenAI, DeepSeek, Qwen, Moonshot, vLLM and Ollama differ only in configuration (base URL,
key, model id), so one entry per model covers them all.
"""

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from chat.streaming.upstream import ModelSpec

OFFLINE_MODEL_NAME = "offline-demo"


def _spec_from_entry(entry: dict, *, fallback_name: str = "") -> ModelSpec:
    if not isinstance(entry, dict):
        raise ImproperlyConfigured("LLM_MODELS entries must be JSON objects")
    name = str(entry.get("name") or fallback_name)
    if not name:
        raise ImproperlyConfigured("every LLM_MODELS entry needs a name")
    api_key = entry.get("api_key", "")
    if entry.get("api_key_env"):
        from chatproject.env import env_str

        api_key = env_str(entry["api_key_env"])
        if not api_key:  # a misspelt name would otherwise send the key "none"
            raise ImproperlyConfigured(
                f"LLM_MODELS entry {name!r}: environment variable {entry['api_key_env']!r} "
                "(api_key_env) is not set"
            )
    try:
        return ModelSpec(
            name=name,
            model_id=str(entry.get("model") or name),
            display_name=str(entry.get("display_name") or name),
            base_url=str(entry.get("base_url") or settings.LLM_BASE_URL),
            api_key=str(api_key or "none"),  # local servers (Ollama, vLLM) accept any key
            max_tokens=int(entry.get("max_tokens", settings.LLM_MAX_TOKENS)),
            timeout=float(entry.get("timeout", settings.LLM_TIMEOUT_SECONDS)),
            max_retries=int(entry.get("max_retries", 0)),
            include_usage=bool(entry.get("include_usage", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"LLM_MODELS entry {name!r}: {exc}") from None


def _offline_spec() -> ModelSpec:
    return ModelSpec(
        name=OFFLINE_MODEL_NAME, model_id=OFFLINE_MODEL_NAME, display_name="离线演示 Offline demo",
        offline=True,
    )  # fmt: skip


@functools.cache
def model_registry() -> dict[str, ModelSpec]:
    """Every model a client may ask for, by name, the default first."""
    specs: list[ModelSpec] = []
    configured = settings.LLM_MODELS
    if isinstance(configured, dict):
        specs += [_spec_from_entry(e, fallback_name=n) for n, e in configured.items()]
    elif isinstance(configured, list):
        specs += [_spec_from_entry(e) for e in configured]
    elif configured is not None:
        raise ImproperlyConfigured("LLM_MODELS must be a JSON list or object")
    if settings.LLM_API_KEY:
        specs.append(
            _spec_from_entry({"name": settings.LLM_MODEL, "api_key": settings.LLM_API_KEY})
        )
    if not specs or settings.LLM_OFFLINE:
        specs.append(_offline_spec())
    registry = {spec.name: spec for spec in specs}
    default = settings.LLM_DEFAULT_MODEL or specs[0].name
    if default not in registry:
        raise ImproperlyConfigured(f"LLM_DEFAULT_MODEL {default!r} is not a configured model")
    return {default: registry[default]} | registry


@receiver(setting_changed)
def _forget_registry(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("LLM_"):
        model_registry.cache_clear()


def model_lookup(name: str | None) -> ModelSpec | None:
    registry = model_registry()
    if not name:
        return next(iter(registry.values()))
    return registry.get(name)
