"""The per-answer writes of the stream endpoint, as plain SQL: open a turn, save its outcome.

Every answer runs these once, so their cost is paid per answer, not per request of some
rarer kind. Through the ORM they cost ~2 ms of CPU per answer on PostgreSQL (query
compilation, model instances, an extra session update); as fixed statements about a
quarter of that (bench/, issue #6). Everything else in the app uses the ORM. The tests
check these rows against the models on SQLite and PostgreSQL.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from chat.models import ChatRecord, ChatSession
from chatproject.db import fixed_statement_cursor

_SESSION = ChatSession._meta.db_table
_RECORD = ChatRecord._meta.db_table

_SESSION_INSERT = (
    f"INSERT INTO {_SESSION} (owner_id, title, created_at, updated_at, is_deleted)"
    " VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
# `updated_at` is the time of the session's latest question (the bulk API keeps the
# same rule), so finishing an answer does not touch the session.
_SESSION_TOUCH = f"UPDATE {_SESSION} SET updated_at = %s WHERE id = %s AND updated_at < %s"
# One column list for both record inserts; the values after `session_id` (literals for the
# fields that always start empty).
_RECORD_COLUMNS = (
    "(session_id, owner_id, question, answer, model_name, status, error_code, rating,"
    " rating_reason, client_id, terminal, question_type, created_at, heartbeat_at, source,"
    " moderation, is_hidden)"
)
_RECORD_VALUES_AFTER_SESSION = "%s, %s, '', %s, %s, '', %s, '', %s, %s, %s, %s, %s, %s, %s, %s"
_RECORD_INSERT = (
    f"INSERT INTO {_RECORD} {_RECORD_COLUMNS}"
    f" VALUES (%s, {_RECORD_VALUES_AFTER_SESSION}) RETURNING id"
)
# PostgreSQL: a new session and its first record in one statement (one round trip, atomic
# by itself) instead of BEGIN, two INSERTs and COMMIT.
_SESSION_AND_RECORD_INSERT = (
    f"WITH new_session AS ({_SESSION_INSERT}) INSERT INTO {_RECORD} {_RECORD_COLUMNS}"
    f" SELECT new_session.id, {_RECORD_VALUES_AFTER_SESSION}"
    " FROM new_session RETURNING id, session_id"
)
_RECORD_FINISH = (
    f"UPDATE {_RECORD} SET status = %s, answer = %s, error_code = %s, prompt_tokens = %s,"
    " completion_tokens = %s, first_token_ms = %s, finished_at = %s"
    " WHERE id = %s AND status IN (%s, %s)"
)
_RECORD_CHECKPOINT = (
    f"UPDATE {_RECORD} SET answer = %s, heartbeat_at = %s, status = %s"
    " WHERE id = %s AND status IN (%s, %s)"
)
# A record whose answer is still being written (what stop, finish and reap may close).
OPEN_STATUSES = (ChatRecord.Status.PENDING, ChatRecord.Status.STREAMING)


@dataclass(frozen=True)
class NewTurn:
    owner_id: int
    session_id: int | None  # None: start a session titled `title`
    title: str
    question: str
    model_name: str
    client_id: str
    terminal: str
    question_type: str


def _db_datetime(value: datetime):
    # SQLite stores datetimes as text in UTC; the ORM does this conversion for its queries.
    return connection.ops.adapt_datetimefield_value(value)


def turn_insert(turn: NewTurn, *, now: datetime) -> tuple[int, int]:
    """Insert the question as a pending record (and its session if new), atomically;
    returns (record_id, session_id)."""
    at = _db_datetime(now)
    session_params = [turn.owner_id, turn.title, at, at, False]
    if turn.session_id is None and connection.vendor == "postgresql":
        with fixed_statement_cursor() as cursor:
            cursor.execute(_SESSION_AND_RECORD_INSERT, session_params + _record_params(turn, at))
            record_id, session_id = cursor.fetchone()
            return record_id, session_id
    with transaction.atomic(), fixed_statement_cursor() as cursor:
        session_id = turn.session_id
        if session_id is None:
            cursor.execute(_SESSION_INSERT, session_params)
            session_id = cursor.fetchone()[0]
        else:
            cursor.execute(_SESSION_TOUCH, [at, session_id, at])
        cursor.execute(_RECORD_INSERT, [session_id, *_record_params(turn, at)])
        return cursor.fetchone()[0], session_id


def _record_params(turn: NewTurn, at) -> list:
    """The record's values after its session id."""
    return [
        turn.owner_id, turn.question, turn.model_name, ChatRecord.Status.PENDING,
        ChatRecord.Rating.NONE, turn.client_id, turn.terminal, turn.question_type, at, at,
        ChatRecord.Source.STREAM, ChatRecord.Moderation.UNREVIEWED, False,
    ]  # fmt: skip


def record_outcome_save(
    *,
    record_id: int,
    status: str,
    answer: str,
    error_code: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    first_token_ms: int | None,
    finished_at: datetime,
) -> None:
    """One UPDATE, and only of a record still open: a stop or reap that closed it first
    keeps its outcome."""
    with fixed_statement_cursor() as cursor:
        cursor.execute(
            _RECORD_FINISH,
            [
                status, answer, error_code, prompt_tokens, completion_tokens, first_token_ms,
                _db_datetime(finished_at), record_id, *OPEN_STATUSES,
            ],
        )  # fmt: skip


def records_checkpoint_save(*, partial_answers: dict[int, str], now: datetime) -> None:
    """Each open record's answer so far and a fresh heartbeat, for all live answers in one
    batch (a pipeline on PostgreSQL); a record with text becomes `streaming`."""
    at = _db_datetime(now)
    rows = [
        (
            answer, at, ChatRecord.Status.STREAMING if answer else ChatRecord.Status.PENDING,
            record_id, *OPEN_STATUSES,
        )
        for record_id, answer in partial_answers.items()
    ]  # fmt: skip
    with transaction.atomic(), fixed_statement_cursor() as cursor:
        cursor.executemany(_RECORD_CHECKPOINT, rows)
