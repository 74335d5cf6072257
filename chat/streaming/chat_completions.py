"""The OpenAI chat-completions wire format that every HTTP adapter speaks: the request
body, the stream's `data:` payloads as `UpstreamChunk`s, and an HTTP error status as the
protocol's error."""

import logging

import orjson

from chat.streaming.upstream import ModelSpec, ProviderError, UpstreamChunk, Usage

logger = logging.getLogger(__name__)

CONTENT_BLOCK_CODES = {"content_filter", "content_policy_violation", "data_inspection_failed"}


def request_body(spec: ModelSpec, messages: list[dict]) -> dict:
    body = {
        "model": spec.model_id, "messages": messages, "max_tokens": spec.max_tokens, "stream": True,
    }  # fmt: skip
    if spec.include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def batch_from(events: list[bytes]) -> tuple[list[UpstreamChunk], bool]:
    """The chunks of the events one read completed, and whether `[DONE]` was among them."""
    batch: list[UpstreamChunk] = []
    for data in events:
        if data == b"[DONE]":
            return batch, True
        chunk = chunk_from(orjson.loads(data))
        if chunk is not None:
            batch.append(chunk)
    return batch, False


def more_text_follows(batch: list[UpstreamChunk]) -> bool:
    # After the finish reason only the usage and `[DONE]` follow: read them at once.
    return any(chunk.text for chunk in batch) and not any(c.finish_reason for c in batch)


def status_error(status: int, code: str, message: str) -> ProviderError:
    """The protocol's error for an HTTP error status (and the body's `error.code`)."""
    if status == 429:
        return ProviderError("rate_limited", "The model service is busy; try again shortly.")
    if code in CONTENT_BLOCK_CODES:
        return ProviderError("content_blocked", "The model declined this content.")
    if status >= 500:
        return ProviderError("upstream_unavailable", "The model service is unavailable.")
    logger.warning("upstream refused the request: %s %s", status, message)
    return ProviderError("upstream_error", "The model service refused the request.")


def chunk_from(payload: dict) -> UpstreamChunk | None:
    if payload.get("error"):
        error = payload["error"]
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        if code in CONTENT_BLOCK_CODES:
            raise ProviderError("content_blocked", "The model declined this content.")
        raise ProviderError("upstream_error", "The model service reported an error mid-answer.")
    raw_usage = payload.get("usage")
    usage = None
    if raw_usage:
        usage = Usage(raw_usage.get("prompt_tokens"), raw_usage.get("completion_tokens"))
    choices = payload.get("choices")
    if not choices:
        return UpstreamChunk(usage=usage) if usage else None
    choice = choices[0]
    text = (choice.get("delta") or {}).get("content") or ""
    finish_reason = choice.get("finish_reason")
    if text or finish_reason or usage:
        return UpstreamChunk(text=text, finish_reason=finish_reason, usage=usage)
    return None
