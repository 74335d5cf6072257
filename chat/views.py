"""The stream endpoint: request -> auth -> record -> generation -> event stream."""

import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import authenticate_request
from chat.delivery import event_stream_response
from chat.generation import generation_start
from chat.services import turn_open
from chat.stream_input import stream_request_parse
from chatproject.db import run_db
from chatproject.errors import ApplicationError, application_error_response, error_response


def _request_body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise ApplicationError(
            "payload_too_large", "The request body is too large.", status=413
        ) from None


@csrf_exempt
async def chat_stream(request: HttpRequest) -> HttpResponseBase:
    """POST a question, receive the answer as Server-Sent Events while it is generated."""
    started_at = time.monotonic()
    if request.method != "POST":
        response = error_response("method_not_allowed", "Use POST.", status=405)
        response["Allow"] = "POST"
        return response
    try:
        user = await authenticate_request(request)
        params = stream_request_parse(_request_body(request))
        turn = await run_db(
            turn_open,
            owner=user,
            question=params.question,
            session_id=params.session_id,
            model_name=params.spec.name,
            client_id=params.client_id,
            terminal=params.terminal,
            question_type=params.question_type,
        )
    except ApplicationError as error:
        return application_error_response(error)
    generation = generation_start(
        record=turn.record, spec=params.spec, messages=turn.messages, started_at=started_at
    )
    return event_stream_response(generation)
