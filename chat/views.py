"""The stream endpoints: ask (request -> auth -> record -> generation -> event stream),
resume an answer's events, and stop an answer."""

import time

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import owner_for_token, owner_id_for_token, signed_bearer_token
from chat.answer_watch import answer_begun
from chat.limits import Admission, admission_withdraw, question_admit, user_limits
from chat.models import ChatRecord
from chat.selectors import record_get_owned
from chat.services import OpenedTurn, turn_open
from chat.stream_input import StreamRequest, last_event_id_parse, stream_request_parse
from chat.streaming import eventbus, lifecycle
from chat.streaming.delivery import answer_response, mirrored_stream_response, resumed_response
from chat.streaming.generation import generation_find, generation_open
from chatproject import metrics
from chatproject.db import run_db
from chatproject.errors import ApplicationError, application_error_response, error_response
from chatproject.logs import log_context
from chatproject.request_body import API_BODY_MAX_BYTES, body_read, json_body_read


def _method_not_allowed(allowed: str) -> JsonResponse:
    response = error_response("method_not_allowed", f"Use {allowed}.", status=405)
    response["Allow"] = allowed
    return response


# Each request makes one trip to the database threads: who is calling, whether their limits
# let them (chat/limits.py), and what they ask.


def _authenticated_turn_open(token: str, params: StreamRequest) -> tuple[OpenedTurn, Admission]:
    owner = owner_for_token(token)
    admission = question_admit(owner_id=owner.id, limits=user_limits(owner.own_limits))
    try:
        turn = turn_open(
            owner_id=owner.id,
            question=params.question,
            session_id=params.session_id,
            model_name=params.spec.name,
            client_id=params.client_id,
            terminal=params.terminal,
            question_type=params.question_type,
        )
    except BaseException:
        admission_withdraw(admission)  # not saved: it counts for nothing
        raise
    return turn, admission


async def _turn_saving(token: str, params: StreamRequest) -> OpenedTurn:
    # Runs to its end even if the client hangs up (chat.streaming.generation.generation_open): a
    # saved question is always watched (its stream slot renewed, then released).
    turn, admission = await run_db(_authenticated_turn_open, token, params)
    answer_begun(
        record_id=turn.record_id, admission=admission, model=params.spec.name,
        question=params.question,
    )  # fmt: skip
    return turn


def _authenticated_record(token: str, record_id: int) -> ChatRecord:
    record = record_get_owned(owner_id=owner_id_for_token(token), record_id=record_id)
    if record is None:
        # Same answer for "not yours" and "does not exist": ids are not an oracle.
        raise ApplicationError("record_not_found", "No such chat record.", status=404)
    return record


def _record_log_context(record: ChatRecord) -> None:
    log_context(user_id=record.owner_id, record_id=record.pk)


@csrf_exempt
async def chat_stream(request: HttpRequest) -> HttpResponseBase:
    """POST a question, receive the answer as Server-Sent Events while it is generated."""
    started_at = time.monotonic()
    if request.method != "POST":
        return _method_not_allowed("POST")
    try:
        token = signed_bearer_token(request)
        try:
            params = stream_request_parse(body_read(request, max_bytes=API_BODY_MAX_BYTES))
        except ApplicationError:
            await run_db(owner_id_for_token, token)  # an expired token hears 401 before 400
            raise
        if lifecycle.is_draining():
            raise ApplicationError(
                "server_draining", "This server is restarting; retry in a moment.", status=503
            )
        lifecycle.ensure_running()  # the process-wide loops start with the first answer
        generation = await generation_open(
            _turn_saving(token, params), spec=params.spec, started_at=started_at
        )
    except ApplicationError as error:
        response = application_error_response(error)
        if error.code == "server_draining":
            response["Retry-After"] = "1"
        return response
    return answer_response(generation)


@csrf_exempt
async def record_events(request: HttpRequest, record_id: int) -> HttpResponseBase:
    """Resume: every event after the last one seen, then live until `done`."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    try:
        token = signed_bearer_token(request)
        json_body_read(request, view=record_events)  # none needed; a bad one is still a 4xx
        after = last_event_id_parse(
            request.headers.get("Last-Event-ID"), request.GET.get("last_event_id")
        )
        record = await run_db(_authenticated_record, token, record_id)
        _record_log_context(record)
        generation = generation_find(record.pk)
        if generation is not None:
            metrics.RESUMES.inc()
            return resumed_response(generation, after=after)
        if eventbus.enabled() and await eventbus.log_found(record.pk):
            metrics.RESUMES.inc()
            return mirrored_stream_response(record.pk, after=after)
        if record.is_finished:
            raise ApplicationError(
                "replay_expired",
                "This answer's events are no longer kept; read the record from the history API.",
                status=410,
            )
        raise ApplicationError(
            "stream_lost", "The server generating this answer is gone.", status=410
        )
    except ApplicationError as error:
        return application_error_response(error)


@csrf_exempt
async def record_stop(request: HttpRequest, record_id: int) -> HttpResponseBase:
    """Stop an answer, whichever process generates it; idempotent."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    try:
        token = signed_bearer_token(request)
        json_body_read(request, view=record_stop)  # none needed; a bad one is still a 4xx
        record = await run_db(_authenticated_record, token, record_id)
    except ApplicationError as error:
        return application_error_response(error)
    _record_log_context(record)
    if record.is_finished:
        return JsonResponse({"record_id": record.pk, "status": record.status})
    metrics.STOP_REQUESTS.inc()
    status = await lifecycle.answer_stop(record_id=record.pk)
    if status is None:
        return JsonResponse({"record_id": record.pk, "status": "stopping"}, status=202)
    return JsonResponse({"record_id": record.pk, "status": status})
