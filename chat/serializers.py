"""Shapes shared by the history API: one session, one record, one error, a page of each."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.models import ChatRecord

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
    """A session as selected by `chat.history.session_list` (annotated and previewed)."""

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
