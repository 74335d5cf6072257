"""The streaming machinery: from a question to its answer's events, on any process.

In the order a question travels: `providers` (the model, over the openai SDK or the
offline demo) -> `sse_reader` and `pacing` (reading its bytes on shared ticks) ->
`generation` (one task per answer: the event log, the save at the end) -> `delivery` (the
HTTP response that writes the log) ; `event_log` and `events` (the frames), `eventbus`
(Redis: logs for resume on any process, stops), `lifecycle` (checkpoints, reaper, drain).
The chat domain's models, selectors and services are below it (this package saves
through `chat.services` and reads through `chat.selectors`) and never import it; the
stream endpoints (`chat/views.py`) call it.
"""
