"""Around each answer, outside its generation: its owner's stream slot and token count
(chat/limits.py), the metrics (chatproject/metrics.py), and one log line when it ends.

The stream view calls `answer_begun` once the question is saved; the generation calls
`answer_ended` once the answer is saved, before its `done` event, so a client that asks
again on `done` finds its stream slot free. Meanwhile this process renews the stream
slots of its answers every `CHAT_CHECKPOINT_SECONDS`.
"""

import asyncio
import contextvars
import logging
import weakref
from dataclasses import dataclass

from django.conf import settings

from chat import limits
from chat.limits import Admission
from chat.services import TurnOutcome
from chatproject import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Watched:
    admission: Admission | None
    model: str
    question: str  # only with CHAT_LOG_CONTENT, for the finished answer's line


_watched: dict[int, _Watched] = {}
_renewals: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = (
    weakref.WeakKeyDictionary()
)


def answer_begun(*, record_id: int, admission: Admission | None, model: str, question: str) -> None:
    question = question if settings.CHAT_LOG_CONTENT else ""
    _watched[record_id] = _Watched(admission=admission, model=model, question=question)
    metrics.QUESTIONS.labels(model=model).inc()
    metrics.ANSWERS_GENERATING.inc()
    _renewal_ensure()


async def answer_ended(*, record_id: int, outcome: TurnOutcome, total_ms: int, saved: bool) -> None:
    """Free the answer's stream slot, count its tokens, its metrics and its log line."""
    watched = _watched.pop(record_id, None)
    reported = outcome.completion_tokens is not None
    completion = outcome.completion_tokens if reported else limits.tokens_estimate(outcome.answer)
    try:
        if watched is not None:
            metrics.ANSWERS_GENERATING.dec()
            if watched.admission is not None:
                await asyncio.to_thread(
                    limits.answer_settle, watched.admission, answer_tokens=completion
                )
        _metrics_count(outcome, completion=completion, reported=reported, total_ms=total_ms,
                       saved=saved)  # fmt: skip
    except Exception:  # counting must never keep an answer from its end
        logger.exception("could not settle the answer's limits and metrics")
    _log_line(watched, outcome, completion=completion, reported=reported, total_ms=total_ms)


def _metrics_count(
    outcome: TurnOutcome, *, completion: int, reported: bool, total_ms: int, saved: bool
) -> None:
    metrics.ANSWERS.labels(status=outcome.status).inc()
    if outcome.first_token_ms is not None:
        metrics.FIRST_TOKEN_SECONDS.observe(outcome.first_token_ms / 1000)
    metrics.ANSWER_SECONDS.observe(total_ms / 1000)
    if outcome.prompt_tokens is not None:
        metrics.TOKENS.labels(kind="prompt", source="reported").inc(outcome.prompt_tokens)
    source = "reported" if reported else "estimated"
    metrics.TOKENS.labels(kind="completion", source=source).inc(completion)
    if outcome.error_code:
        metrics.error_count(where="stream", code=outcome.error_code)
    if not saved:
        metrics.error_count(where="stream", code="storage_error")


def _log_line(
    watched: _Watched | None, outcome: TurnOutcome, *, completion: int, reported: bool,
    total_ms: int,
) -> None:  # fmt: skip
    fields = {
        "model": watched.model if watched else None,
        "status": outcome.status,
        "error_code": outcome.error_code or None,
        "first_token_ms": outcome.first_token_ms,
        "total_ms": total_ms,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": completion,
        "completion_tokens_estimated": not reported,
    }
    if settings.CHAT_LOG_CONTENT:
        fields["question"] = watched.question if watched else None
        fields["answer"] = outcome.answer
    logger.info(
        "answer finished: %s%s in %d ms, %d completion tokens",
        outcome.status, f" ({outcome.error_code})" if outcome.error_code else "", total_ms,
        completion, extra=fields,
    )  # fmt: skip


# --- Renewing this process's stream slots -------------------------------------------------


def _renewal_ensure() -> None:
    loop = asyncio.get_running_loop()
    task = _renewals.get(loop)
    if task is None or task.done():
        # A context of its own: not the one of the request that happened to start it.
        _renewals[loop] = loop.create_task(
            _renew_forever(), name="chat-slot-renewal", context=contextvars.Context()
        )


async def _renew_forever() -> None:
    while True:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_SECONDS)
        held = [w.admission for w in _watched.values() if w.admission is not None]
        if not held:
            continue
        try:
            await asyncio.to_thread(limits.admissions_renew, held)
        except Exception:
            logger.exception("could not renew stream slots; will retry")
