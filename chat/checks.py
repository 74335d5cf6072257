"""System checks: a wrong model configuration is found at start-up, not at the first
question (`manage.py check`, `runserver`, `migrate`; the ASGI entry point builds the
registry itself, so uvicorn refuses to start too)."""

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured

from chat.content_check.checkers import checker_configured
from chat.providers import model_registry


@register()
def models_configured(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    try:
        model_registry()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="See LLM_MODELS in README.md.", id="chat.E001")]
    return []


@register()
def content_check_configured(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    try:
        checker_configured()
    except ImproperlyConfigured as error:
        return [Error(str(error), hint="See CHAT_CONTENT_CHECK in README.md.", id="chat.E002")]
    return []
