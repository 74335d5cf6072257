"""The server process's lifespan: what it closes when it stops."""

from django.test import override_settings

from chat.streaming import aiohttp_stream
from chat.streaming.lifecycle import lifespan
from chat.streaming.model_registry import model_lookup
from chat.streaming.openai_stream import _client_for
from tests.conftest import live_models


async def test_the_lifespan_shutdown_closes_the_model_clients(upstream):
    # Both adapters' connections: the SDK's client (httpx) and aiohttp's session.
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    with override_settings(LLM_MODELS=live_models(upstream)):
        client = _client_for(model_lookup("test-model"))
        session = aiohttp_stream._session()
        await lifespan({"type": "lifespan"}, receive, send)
        assert client.is_closed()
        assert session.closed
        # The next answer on this loop gets a new client.
        assert _client_for(model_lookup("test-model")) is not client
        await _client_for(model_lookup("test-model")).close()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
