"""The stream endpoints in the OpenAPI schema: plain async views (DRF has no async
dispatch), so their request, events and answers are described here by hand and added by
a postprocessing hook (SPECTACULAR_SETTINGS)."""

from typing import Any

from django.conf import settings

from chat.models import ChatRecord
from chat.streaming.model_registry import model_registry

_STREAM_EVENTS = """
The answer is `text/event-stream`. Each event is one frame: `id: <seq>`, `event: <type>`,
`data: <one-line JSON>` and a blank line. Events, in this order:

| event | data (schema) |
|---|---|
| `start` | `record_id`, `session_id`, `model` (StreamStartEvent) |
| `delta` | `text`: the next piece of the answer, never empty (StreamDeltaEvent) |
| `error` | `code`, `message`; at most one from the model, then maybe `storage_error` \
(StreamErrorEvent) |
| `done` | `record_id`, `session_id`, `status`, `finish_reason`, `error_code`, `usage`, \
`timings` (StreamDoneEvent) |

`: ping` comments keep an idle connection open; `data: [DONE]` is always the last frame.
Once the stream starts the status is 200: failures arrive as `error` events. See
docs/protocol.md for every code.
"""

_STREAM_EXAMPLE = (
    'id: 1\nevent: start\ndata: {"type":"start","record_id":2,"session_id":2,'
    '"model":"offline-demo"}\n\n'
    'id: 2\nevent: delta\ndata: {"type":"delta","text":"你好"}\n\n'
    'id: 3\nevent: done\ndata: {"type":"done","record_id":2,"session_id":2,"status":"done",'
    '"finish_reason":"stop","error_code":null,"usage":{"prompt_tokens":null,'
    '"completion_tokens":null,"total_tokens":null},"timings":{"first_token_ms":40,'
    '"total_ms":90}}\n\n'
    "data: [DONE]\n\n"
)


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def _stream_components() -> dict[str, dict]:
    integer, string = {"type": "integer"}, {"type": "string"}
    nullable_integer = _nullable(integer)

    def event(kind: str, required: list[str], **properties: dict) -> dict:
        properties = {"type": {"type": "string", "enum": [kind]}, **properties}
        return {"type": "object", "required": ["type", *required], "properties": properties}

    return {
        "StreamRequest": {
            "type": "object",
            "required": ["question"],
            "properties": {
                "question": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": settings.CHAT_QUESTION_MAX_CHARS,
                },
                "session_id": _nullable(
                    {**integer, "minimum": 1, "description": "Omit to start a new session."}
                ),
                "model": _nullable(
                    {**string, "description": "Configured: " + ", ".join(model_registry())}
                ),
                "client_id": _nullable({**string, "maxLength": 64}),
                "terminal": {"type": "string", "enum": ChatRecord.Terminal.values},
                "question_type": _nullable({**string, "maxLength": 32}),
            },
        },
        "StreamStartEvent": event(
            "start",
            ["record_id", "session_id", "model"],
            record_id=integer,
            session_id=integer,
            model=string,
        ),
        "StreamDeltaEvent": event("delta", ["text"], text={**string, "minLength": 1}),
        "StreamErrorEvent": event("error", ["code", "message"], code=string, message=string),
        "StreamDoneEvent": event(
            "done",
            ["record_id", "session_id", "status", "finish_reason", "error_code", "usage"],
            record_id=integer,
            session_id=integer,
            status={"type": "string", "enum": ChatRecord.Status.values},
            finish_reason=_nullable(string),
            error_code=_nullable(string),
            usage={
                "type": "object",
                "properties": {
                    "prompt_tokens": nullable_integer,
                    "completion_tokens": nullable_integer,
                    "total_tokens": nullable_integer,
                },
            },
            timings={
                "type": "object",
                "properties": {"first_token_ms": nullable_integer, "total_ms": integer},
            },
        ),
    }


def _error(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/ErrorOutput"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_RECORD_ID = {
    "name": "record_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def _events_operation() -> dict:
    return {
        "operationId": "chat_record_events",
        "summary": "Resume an answer's events after the last one seen, then live until done",
        "description": "See docs/protocol.md §8. Same events as the stream endpoint.",
        "tags": ["stream"],
        "security": [{"bearerAuth": []}],
        "parameters": [
            _RECORD_ID,
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}},
            {"name": "last_event_id", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ],
        "responses": {
            "200": {
                "description": "Every event after the given id, then live events, then [DONE].",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "400": _error("`invalid_last_event_id`."),
            "401": _error("`not_authenticated` or `invalid_token`."),
            "404": _error("`record_not_found`: unknown or not yours."),
            "410": _error("`replay_expired` (read the record instead) or `stream_lost`."),
        },
    }


def _stop_operation() -> dict:
    status = {"type": "object", "properties": {
        "record_id": {"type": "integer"}, "status": {"type": "string"}}}  # fmt: skip
    return {
        "operationId": "chat_record_stop",
        "summary": "Stop an answer in whichever server process generates it (idempotent)",
        "tags": ["stream"],
        "security": [{"bearerAuth": []}],
        "parameters": [_RECORD_ID],
        "responses": {
            "200": {
                "description": "The answer is closed; `status` is its final status.",
                "content": {"application/json": {"schema": status}},
            },
            "202": {
                "description": "Stop sent, not yet confirmed (`status: stopping`).",
                "content": {"application/json": {"schema": status}},
            },
            "401": _error("`not_authenticated` or `invalid_token`."),
            "404": _error("`record_not_found`: unknown or not yours."),
        },
    }


def _stream_operation() -> dict:
    error = _error
    return {
        "operationId": "chat_stream",
        "summary": "Ask a question; the answer streams back as Server-Sent Events",
        "description": _STREAM_EVENTS,
        "tags": ["stream"],
        "security": [{"bearerAuth": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/StreamRequest"}}
            },
        },
        "responses": {
            "200": {
                "description": "The event stream.",
                "headers": {
                    "X-Record-Id": {"schema": {"type": "integer"}, "description": "As `start`."}
                },
                "content": {
                    "text/event-stream": {"schema": {"type": "string"}, "example": _STREAM_EXAMPLE}
                },
            },
            "400": error(
                "`malformed_json`, `question_required`, `question_too_long`, `invalid_input`, "
                "`unknown_model`."
            ),
            "401": error("`not_authenticated` or `invalid_token`."),
            "404": error("`session_not_found`: unknown, deleted or not yours."),
            "405": error("`method_not_allowed`: use POST."),
            "409": error("`duplicate_client_id`."),
            "413": error("`payload_too_large`."),
            "503": error("`server_draining`: this process is restarting; retry (Retry-After)."),
        },
    }


def schema_stream_add(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Postprocessing hook: the stream endpoints are plain async views; add them by hand."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(_stream_components())
    result["paths"]["/api/chat/stream"] = {"post": _stream_operation()}
    result["paths"]["/api/chat/records/{record_id}/events"] = {"get": _events_operation()}
    result["paths"]["/api/chat/records/{record_id}/stop"] = {"post": _stop_operation()}
    return result
