"""A bounded, seeded chaos run against two server processes: questions whose model fails,
drops, goes silent or runs long, asked by clients that read to the end, hang up at random
moments (from the instant they send to mid-answer), resume through the other process, or
stop through it. Every outcome is checked against the documented rules (docs/protocol.md
§2, §5, §8) and counted in a table.

The random draws are seeded; how a draw plays out may depend on timing (a hang-up 3 ms
after sending may land before or after the question is read), so the rules accept each
documented outcome of a draw and nothing else.
"""

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.live import hang_up_after, hang_up_after_sending, resume_chat, stream_chat
from tests.support.sse import StreamTranscript
from tests.support.upstream import FakeUpstream, Scenario

NOT_SAVED = "not saved"

# What each fault makes of an answer read to the end: (status, error code, model).
FAULTS = {
    "ok": ("done", "", "test-model"),
    "long": ("done", "", "test-model"),
    "http_500": ("error", "upstream_unavailable", "test-model"),
    "drop": ("error", "upstream_unavailable", "test-model"),
    "silence": ("done", "", "test-patient"),
    "silence_timeout": ("error", "upstream_timeout", "test-seven"),
}
# Answers that go on for longer than the grace period after an early hang-up.
OUTLIVE_GRACE = {"long", "silence", "silence_timeout"}
CLIENTS = ("read", "leave_at_send", "leave_mid", "resume_elsewhere", "stop_elsewhere")


def scenario_for(upstream: FakeUpstream, fault: str) -> Scenario:
    """The upstream behaviour of a fault; silences outlast the Redis client's 5 s timeout."""
    words = [f"w{i} " for i in range(12)]
    scripts = {
        "ok": {"tokens": words, "pace": 0.02},
        "long": {"tokens": [f"l{i} " for i in range(150)], "pace": 0.03},
        "http_500": {"status": 500},
        "drop": {"tokens": words, "pace": 0.02, "drop_after": 4},
        "silence": {"tokens": words, "pace": 0.02, "stall_after_tokens": 3, "stall_mid": 6},
        "silence_timeout": {
            "tokens": words, "pace": 0.02, "stall_after_tokens": 3, "stall_mid": 10,
        },
    }  # fmt: skip
    return upstream.script(**scripts[fault])


def allowed_statuses(fault: str, client: str) -> set[str]:
    """The final record statuses the documented rules allow for this draw."""
    natural = FAULTS[fault][0]
    if client in ("read", "resume_elsewhere"):
        return {natural}
    if client == "stop_elsewhere":
        # A stop that arrives after the answer ended changes nothing.
        return {"stopped"} if fault in OUTLIVE_GRACE else {"stopped", natural}
    # Left: answered as a detached answer, cut when the grace period runs out.
    left = {"interrupted"} if fault in OUTLIVE_GRACE else {natural}
    if client == "leave_mid":
        left.add(natural)  # the deltas it waited for came late: it left as the answer ended
    if client == "leave_at_send":
        left.add(NOT_SAVED)  # hung up before the question was read
    return left


@dataclass
class Draw:
    index: int
    fault: str
    client: str
    asks_first: bool  # asks process A (else B); resumes and stops go to the other one
    delay: float  # leave_at_send: seconds between sending and hanging up
    deltas: int  # leave_mid, resume_elsewhere, stop_elsewhere: deltas before acting
    pause: float  # resume_elsewhere: seconds away before resuming
    scenario: Scenario | None = None
    transcripts: list[StreamTranscript] = field(default_factory=list)
    stop_status: int | None = None


def draws(seed: int, per_pair: int) -> list[Draw]:
    rng = random.Random(seed)
    pairs = [(fault, client) for fault in FAULTS for client in CLIENTS] * per_pair
    rng.shuffle(pairs)
    return [
        Draw(
            index=index,
            fault=fault,
            client=client,
            asks_first=rng.random() < 0.5,
            delay=rng.uniform(0, 0.02),
            deltas=rng.randint(1, 2),
            pause=rng.uniform(0, 0.5),
        )
        for index, (fault, client) in enumerate(pairs)
    ]


async def play(draw: Draw, *, question: str, token: str, asked, other) -> None:
    """One client's part, against `asked` (an httpx client) and `other` (the other process)."""
    body = {"question": question, "model": FAULTS[draw.fault][2]}
    if draw.client == "leave_at_send":
        await hang_up_after_sending(str(asked.base_url), token, body, delay=draw.delay)
        return
    if draw.client == "read":
        draw.transcripts.append(await stream_chat(asked, token, body))
        return
    if draw.client == "stop_elsewhere":
        await _ask_and_stop(draw, body=body, token=token, asked=asked, other=other)
        return
    first = await stream_chat(asked, token, body, on_event=hang_up_after(draw.deltas))
    draw.transcripts.append(first)
    if draw.client == "resume_elsewhere" and not first.saw_done_marker:
        await asyncio.sleep(draw.pause)
        record_id, last_id = first.start["record_id"], first.events[-1].id
        draw.transcripts.append(await resume_chat(other, token, record_id, last_id))


async def _ask_and_stop(draw: Draw, *, body: dict, token: str, asked, other) -> None:
    started: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_event(event, transcript):
        if len(transcript.of_type("delta")) == draw.deltas and not started.done():
            started.set_result(transcript.start["record_id"])

    reading = asyncio.create_task(stream_chat(asked, token, body, on_event=on_event))
    await asyncio.wait([reading, started], return_when=asyncio.FIRST_COMPLETED)
    if started.done():
        response = await other.post(
            f"/api/chat/records/{started.result()}/stop",
            headers={"Authorization": f"Bearer {token}"},
        )
        draw.stop_status = response.status_code
    started.cancel()
    draw.transcripts.append(await reading)


# --- Checking and counting ------------------------------------------------------------------


def check(draw: Draw, record) -> str:
    """The draw's outcome, once the rules are checked (AssertionError names the draw)."""
    where = f"draw {draw.index} ({draw.fault}, {draw.client})"
    status = NOT_SAVED if record is None else record.status
    assert status in allowed_statuses(draw.fault, draw.client), (where, status)
    if record is None:
        return status
    assert draw.scenario.text.startswith(record.answer), (where, record.answer)
    if status == "error":
        assert record.error_code == FAULTS[draw.fault][1], (where, record.error_code)
        if draw.fault == "drop":  # every token that came before the drop is kept
            assert record.answer == "".join(draw.scenario.tokens[:4]), (where, record.answer)
    else:
        assert record.error_code == "", (where, record.error_code)
    for transcript in draw.transcripts:
        assert transcript.status_code == 200, (where, transcript.status_code)
    if draw.transcripts and draw.transcripts[-1].saw_done_marker:
        _check_read_to_the_end(where, draw.transcripts, record)
    if draw.stop_status is not None:
        assert draw.stop_status in (200, 202), (where, draw.stop_status)
    return status


def _check_read_to_the_end(where: str, transcripts: list[StreamTranscript], record) -> None:
    """Every event once, in order, then `done` and `[DONE]`; the saved answer is the text."""
    seen = [event for transcript in transcripts for event in transcript.events]
    assert [e.id for e in seen] == list(range(1, len(seen) + 1)), where
    assert (seen[0].event, seen[-1].event) == ("start", "done"), where
    done = seen[-1].data
    assert (done["status"], done["error_code"]) == (record.status, record.error_code or None)
    assert "".join(e.data["text"] for e in seen if e.event == "delta") == record.answer, where


def outcome_table(results: list[tuple[Draw, str]]) -> str:
    """Rows: fault x client; cells: how many ended how."""
    by_row: dict[tuple[str, str], Counter] = {}
    for draw, outcome in results:
        by_row.setdefault((draw.fault, draw.client), Counter())[outcome] += 1
    lines = [
        "| fault | client | n | outcomes |",
        "|---|---|---|---|",
    ]
    for (fault, client), counts in sorted(by_row.items()):
        cells = ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items()))
        lines.append(f"| {fault} | {client} | {sum(counts.values())} | {cells} |")
    totals = Counter(outcome for _, outcome in results)
    summary = ", ".join(f"{outcome} {n}" for outcome, n in sorted(totals.items()))
    lines.append(f"| all | all | {len(results)} | {summary} |")
    return "\n".join(lines)


async def run(*, seed: int, per_pair: int, urls: tuple[str, str], token: str, upstream, tag: str):
    """Play every draw at once (starts spread over a second); returns the draws."""
    plan = draws(seed, per_pair)
    limits = httpx.Limits(max_connections=500)
    async with (
        httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits) as on_a,
        httpx.AsyncClient(base_url=urls[1], timeout=60, limits=limits) as on_b,
    ):

        async def one(draw: Draw) -> None:
            draw.scenario = scenario_for(upstream, draw.fault)
            await asyncio.sleep(draw.index * 1.0 / len(plan))
            asked, other = (on_a, on_b) if draw.asks_first else (on_b, on_a)
            question = f"{tag} {draw.index} {draw.scenario.tag}"
            await play(draw, question=question, token=token, asked=asked, other=other)

        await asyncio.gather(*(one(draw) for draw in plan))
    return plan
