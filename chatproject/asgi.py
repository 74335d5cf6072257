"""ASGI entry point: `python -m uvicorn chatproject.asgi:application` (production),
or `python -m chatproject.serve_daphne chatproject.asgi:application` (daphne)."""

import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from chat.content_check.checkers import checker_configured  # noqa: E402
from chat.services import records_reap  # noqa: E402
from chat.streaming import lifecycle  # noqa: E402
from chat.streaming.model_registry import model_registry  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "lifespan": lifecycle.lifespan})


def _reap_at_start_up() -> None:
    # Answers a crashed process left open are closed before this one serves anything.
    from django.conf import settings

    try:
        reaped = records_reap(stale_after_seconds=settings.CHAT_REAP_AFTER_SECONDS)
    except Exception:  # e.g. migrations not applied yet: serving matters more
        logging.getLogger(__name__).exception("start-up reaper failed")
        return
    if reaped:
        logging.getLogger(__name__).warning("reaped %d abandoned records at start-up", len(reaped))


model_registry()  # a wrong LLM_MODELS stops the server now, not at the first question
checker_configured()  # so does a wrong CHAT_CONTENT_CHECK
_reap_at_start_up()
lifecycle.install_sigterm_drain()

# Everything loaded so far (Django, the SDK, pydantic models...) lives as long as the
# process: keep it out of the collector's full passes, which otherwise took ~170 ms and
# stalled every open stream at once (bench/).
gc.collect()
gc.freeze()
