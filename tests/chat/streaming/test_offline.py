"""The zero-configuration default: the offline demo model answers with no network."""

import pytest
from django.test import AsyncClient, override_settings

from chat.models import ChatRecord
from chat.streaming.model_registry import OFFLINE_MODEL_NAME, model_lookup
from chat.streaming.offline import offline_answer, offline_tokens
from tests.support.sse import StreamTranscript, read_streaming_response

pytestmark = pytest.mark.django_db(transaction=True)


def test_offline_model_is_the_default_when_no_model_is_configured():
    with override_settings(LLM_MODELS=None, LLM_API_KEY=""):
        assert model_lookup(None).name == OFFLINE_MODEL_NAME


def test_offline_tokens_rebuild_the_answer_exactly():
    answer = offline_answer("多行\n问题 😀")
    assert "".join(offline_tokens(answer)) == answer
    assert len(offline_tokens(answer)) > 100


async def _ask(token: str, question: str) -> StreamTranscript:
    response = await AsyncClient().post(
        "/api/chat/stream",
        data={"question": question},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    return await read_streaming_response(response)


@override_settings(LLM_MODELS=None, LLM_API_KEY="", CHAT_OFFLINE_TOKENS_PER_SECOND=5000)
async def test_offline_demo_streams_a_labelled_markdown_answer_and_saves_it(owner_token):
    transcript = await _ask(owner_token, "你好 👋")

    text = transcript.text
    assert "Offline demo" in text
    assert "你好 👋" in text
    assert "```python" in text
    assert "\n1. " in text
    assert transcript.done["status"] == "done"
    assert transcript.start["model"] == OFFLINE_MODEL_NAME
    record = await ChatRecord.objects.aget(pk=transcript.done["record_id"])
    assert record.answer == text
    assert record.completion_tokens == len(offline_tokens(offline_answer("你好 👋")))


@override_settings(LLM_MODELS=None, LLM_API_KEY="", CHAT_OFFLINE_TOKENS_PER_SECOND=500)
@pytest.mark.parametrize("window_ms", [0, 60])
async def test_deltas_within_the_coalescing_window_travel_together(owner_token, window_ms):
    tokens = offline_tokens(offline_answer("合并"))
    with override_settings(CHAT_COALESCE_MS=window_ms):
        transcript = await _ask(owner_token, "合并")

    deltas = transcript.of_type("delta")
    assert transcript.text == "".join(tokens)
    # The first delta never waits for its window: it carries what the model had produced
    # when it was read (one token, a few on a busy machine), not a window's ~30.
    first = deltas[0].data["text"]
    assert first in {"".join(tokens[:count]) for count in range(1, 11)}
    if window_ms == 0:
        assert len(deltas) == len(tokens)
    else:
        # ~2 ms per token, 60 ms windows: about 30 tokens per event.
        assert len(deltas) < len(tokens) / 10
