"""System checks: a wrong model configuration is found at start-up, not at the first
question (`manage.py check`, `runserver`, `migrate`; the ASGI entry point builds the
registry itself, so uvicorn refuses to start too)."""

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from chat.content_check.checkers import checker_configured
from chat.streaming.model_registry import model_registry
from chatproject.middleware import STREAM_LANE, STREAM_LANE_STANDS_IN_FOR, stream_lane_skips


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


@register()
def middleware_streams_skip(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Each configured middleware that the answer streams would skip, named: nothing is
    left out of them silently."""
    return [
        Warning(
            f"{name} does not run on the answer streams (/api/chat/stream, a record's "
            "events and stop): it is listed below the stream lane.",
            hint=f"To run it on streams too, list it above {STREAM_LANE} in MIDDLEWARE.",
            obj=name,
            id="chat.W002",
        )
        for name in stream_lane_skips()
        if name not in STREAM_LANE_STANDS_IN_FOR
    ]
