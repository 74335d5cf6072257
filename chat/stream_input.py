"""Parsing and checking the stream endpoint's JSON body, before anything is written."""

from dataclasses import dataclass

from django.conf import settings

from chat.models import ChatRecord
from chat.streaming.model_registry import model_lookup
from chat.streaming.upstream import ModelSpec
from chatproject.errors import ApplicationError
from chatproject.request_body import json_parse, malformed_json

_CLIENT_ID_MAX = 64
_QUESTION_TYPE_MAX = 32
# Django rebuilds a choices enum's `values` on every access (py-spy: 1.7% of the samples at N=100).
_TERMINALS = tuple(ChatRecord.Terminal.values)


@dataclass(frozen=True)
class StreamRequest:
    question: str
    session_id: int | None
    spec: ModelSpec
    client_id: str
    terminal: str
    question_type: str


def _invalid(code: str, message: str) -> ApplicationError:
    return ApplicationError(code, message, status=400)


def _optional_str(body: dict, key: str, *, max_length: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise _invalid("invalid_input", f"`{key}` must be a string of at most {max_length}.")
    return value.strip()


def _session_id(body: dict) -> int | None:
    value = body.get("session_id")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid("invalid_input", "`session_id` must be an integer.")
    try:
        session_id = int(value)
    except ValueError:
        raise _invalid("invalid_input", "`session_id` must be an integer.") from None
    if session_id <= 0:
        raise _invalid("invalid_input", "`session_id` must be positive.")
    return session_id


def _question(body: dict) -> str:
    question = body.get("question")
    if question is None or (isinstance(question, str) and not question.strip()):
        raise _invalid("question_required", "`question` is required and must not be empty.")
    if not isinstance(question, str):
        raise _invalid("invalid_input", "`question` must be a string.")
    if "\x00" in question:  # PostgreSQL text cannot hold NUL; no real question has one
        raise _invalid("invalid_input", "`question` must not contain NUL characters.")
    limit = settings.CHAT_QUESTION_MAX_CHARS
    if len(question) > limit:
        raise _invalid("question_too_long", f"`question` is longer than {limit} characters.")
    return question.strip()


def _spec(body: dict) -> ModelSpec:
    name = body.get("model")
    if name is not None and not isinstance(name, str):
        raise _invalid("invalid_input", "`model` must be a string.")
    spec = model_lookup(name)
    if spec is None:
        raise _invalid("unknown_model", f"Unknown model {name!r}.")
    return spec


def _terminal(body: dict) -> str:
    value = body.get("terminal") or ChatRecord.Terminal.API
    if value not in _TERMINALS:
        allowed = ", ".join(_TERMINALS)
        raise _invalid("invalid_input", f"`terminal` must be one of {allowed}.")
    return value


def stream_request_parse(raw_body: bytes) -> StreamRequest:
    body = json_parse(raw_body)
    if not isinstance(body, dict):
        raise malformed_json("The request body must be a JSON object.")
    return StreamRequest(
        question=_question(body),
        session_id=_session_id(body),
        spec=_spec(body),
        client_id=_optional_str(body, "client_id", max_length=_CLIENT_ID_MAX),
        terminal=_terminal(body),
        question_type=_optional_str(body, "question_type", max_length=_QUESTION_TYPE_MAX),
    )


def last_event_id_parse(header: str | None, query: str | None) -> int:
    """The last event id a resuming client saw (header first, then query); 0 if none."""
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise _invalid("invalid_last_event_id", "Last-Event-ID must be a whole number ≥ 0.")
    return value
