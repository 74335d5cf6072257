"""Shapes shared by the history API: one session, one record, one error, a page of each."""

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.models import ChatRecord
from chatproject.drf import TextField

# Beyond a signed 64-bit integer the database answers with an overflow, not "not found".
MAX_DB_ID = 2**63 - 1


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)


class RecordOutput(serializers.Serializer):
    """One question and its answer, with the status that says how the answer ended."""

    id = serializers.IntegerField()
    session_id = serializers.IntegerField()
    question = serializers.CharField()
    answer = serializers.CharField()
    status = serializers.ChoiceField(choices=ChatRecord.Status.choices)
    error_code = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_name")
    rating = serializers.ChoiceField(choices=ChatRecord.Rating.choices)
    rating_reason = serializers.CharField()
    client_id = serializers.SerializerMethodField()
    terminal = serializers.ChoiceField(choices=ChatRecord.Terminal.choices)
    question_type = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    first_token_ms = serializers.IntegerField(allow_null=True)
    usage = serializers.SerializerMethodField()

    # null rather than "" for "none", as in the stream's `done` event.
    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error_code(self, record: ChatRecord) -> str | None:
        return record.error_code or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_client_id(self, record: ChatRecord) -> str | None:
        return record.client_id or None

    @extend_schema_field(UsageOutput)
    def get_usage(self, record: ChatRecord) -> dict:
        return {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.total_tokens,
        }


class SearchHitOutput(RecordOutput):
    session_title = serializers.CharField(source="session.title")


class RecordPreviewOutput(serializers.Serializer):
    """The start of a session's latest record, for a session list."""

    id = serializers.IntegerField()
    question = serializers.CharField(help_text="The first 100 characters.")
    answer = serializers.CharField(help_text="The first 100 characters.")
    status = serializers.ChoiceField(choices=ChatRecord.Status.choices)
    created_at = serializers.DateTimeField()


class SessionOutput(serializers.Serializer):
    """A session as selected by `chat.selectors.session_list` (annotated and previewed)."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(
        help_text="Time of the latest question in the session (the list order)."
    )
    record_count = serializers.IntegerField()
    last_record = RecordPreviewOutput(allow_null=True)


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        required=False, help_text="Only with `invalid_input`: the messages for each bad field."
    )


class ErrorOutput(serializers.Serializer):
    """The one error shape: `{"error": {"code", "message"}}`."""

    error = ErrorDetailOutput()


# --- The web-view handoff's items (chat/handoff.py) ----------------------------------------

ANSWER_MAX_CHARS = 20_000
KEY_MAX_CHARS = 64
CHINA = ZoneInfo("Asia/Shanghai")
# Mini-programs opened to the public in January 2017; nothing older is a real chat. Phones
# whose clock or time zone is off are common, hence a day of slack into the future.
EARLIEST = datetime(2017, 1, 1, tzinfo=CHINA)
FUTURE_SLACK = timedelta(days=1)
LEGACY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DIGITS = re.compile(r"^[0-9]{1,18}$")

Rating = ChatRecord.Rating
Status = ChatRecord.Status
Terminal = ChatRecord.Terminal
LEGACY_USEFUL = {0: Rating.NONE, 1: Rating.USEFUL, 2: Rating.NOT_USEFUL}
TERMINAL_ALIASES = {
    **{value: value for value in Terminal.values},
    "h5": Terminal.WEBVIEW,
    "web": Terminal.WEBVIEW,
    "web-view": Terminal.WEBVIEW,
    "mp": Terminal.MINIPROGRAM,
    "mini": Terminal.MINIPROGRAM,
    "wxapp": Terminal.MINIPROGRAM,
}


@extend_schema_field(
    {"oneOf": [{"type": "string", "maxLength": KEY_MAX_CHARS}, {"type": "integer"}]}
)
class ClientKeyField(serializers.Field):
    """An id chosen by the client, as a string or a number (JavaScript ids often are)."""

    default_error_messages = {
        "invalid": "Must be a string or an integer of at most {max} characters.",
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid", max=KEY_MAX_CHARS)
        value = str(data).strip()
        if len(value) > KEY_MAX_CHARS or "\x00" in value or not value.isprintable():
            self.fail("invalid", max=KEY_MAX_CHARS)
        return value

    def to_representation(self, value: str) -> str:
        return value


def _text(max_length: int | None = None, **kwargs: Any) -> TextField:
    return TextField(
        required=False, allow_null=True, allow_blank=True, max_length=max_length, **kwargs
    )


def _key(help_text: str) -> ClientKeyField:
    return ClientKeyField(required=False, allow_null=True, help_text=help_text)


def _db_id(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=MAX_DB_ID, required=False, allow_null=True, help_text=help_text
    )


class HandoffItemSerializer(serializers.Serializer):
    """One message, in our snake_case names or in the names H5 pages already send.

    When both names of a pair are sent, the snake_case one wins. `null` means "not sent".
    """

    record_id = _db_id("A record saved by the stream endpoint (`record_id` of `start`).")
    client_id = _text(KEY_MAX_CHARS, help_text="The client's own message id.")
    session_id = _db_id("Only for a new record: the session to put it in.")
    question = _text(help_text="Required to create a record; ignored when updating one.")
    answer = _text(ANSWER_MAX_CHARS, trim_whitespace=False)
    rating = serializers.ChoiceField(choices=Rating.choices, required=False, allow_null=True)
    rating_reason = _text(200)
    created_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default_timezone=CHINA,
        help_text="ISO 8601; without an offset it is China time.",
    )
    model = _text(100, help_text="Name of the model that answered.")
    terminal = _key("`miniprogram`, `webview` or `api` (also `h5`, `web`, `mp`).")
    question_type = _text(32)
    window = _key("The chat window the message belongs to (groups items into sessions).")
    # The names H5 pages already send (camelCase on the wire, so here too).
    id = _key("Legacy: the page's message id (or the `record_id` the stream returned).")
    useful = serializers.ChoiceField(
        choices=[(0, "none"), (1, "useful"), (2, "not useful")],
        required=False,
        allow_null=True,
        help_text="Legacy rating: 0 none, 1 useful, 2 not useful.",
    )
    createTime = serializers.RegexField(
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
        required=False,
        allow_null=True,
        help_text="Legacy: `YYYY-MM-DD HH:mm:ss`, China time (Asia/Shanghai).",
    )
    largeModel = _text(100, help_text="Legacy name of `model`.")
    questionType = _text(32, help_text="Legacy name of `question_type`.")

    def validate(self, attrs: dict) -> dict:
        question = attrs.get("question") or ""
        if len(question) > settings.CHAT_QUESTION_MAX_CHARS:
            limit = settings.CHAT_QUESTION_MAX_CHARS
            raise serializers.ValidationError({"question": [f"Longer than {limit} characters."]})
        rating = attrs.get("rating")
        if rating is None and attrs.get("useful") is not None:
            rating = LEGACY_USEFUL[attrs["useful"]]
        legacy_id = attrs.get("id") or ""
        return {
            "question": question,
            "answer": attrs.get("answer"),
            "rating": rating,
            "rating_reason": attrs.get("rating_reason"),
            "created_at": _created_at(attrs),
            "model_name": attrs.get("model") or attrs.get("largeModel") or "",
            "terminal": TERMINAL_ALIASES.get(
                (attrs.get("terminal") or "").lower(), Terminal.WEBVIEW
            ),
            "question_type": attrs.get("question_type") or attrs.get("questionType") or "",
            "window": attrs.get("window") or "",
            "record_id": attrs.get("record_id"),
            "client_id": attrs.get("client_id") or legacy_id,
            "maybe_record_id": int(legacy_id) if _DIGITS.match(legacy_id) else None,
            "session_id": attrs.get("session_id"),
        }


def _created_at(attrs: dict) -> datetime | None:
    name, value = "created_at", attrs.get("created_at")
    if value is None and attrs.get("createTime"):
        name = "createTime"
        try:
            value = datetime.strptime(attrs["createTime"], LEGACY_TIME_FORMAT)
        except ValueError:
            raise serializers.ValidationError({name: ["Not a real date and time."]}) from None
        value = value.replace(tzinfo=CHINA)
    if value is not None and not EARLIEST <= value <= timezone.now() + FUTURE_SLACK:
        raise serializers.ValidationError({name: ["Before 2017 or in the future."]})
    return value
