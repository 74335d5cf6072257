"""The load generator, in its own process: N concurrent streams through a relay, plus a
sample of streams read straight from the upstream at the same moment (the reference).

    python -m bench.loadgen CONFIG.json   # prints one JSON summary on stdout

Per stream it records the request start, the first delta, and per token the receive time
of the network read that completed the SSE frame carrying it minus the token's emission
time, read from the `[[<microseconds>]]` marker the upstream puts in every token's text.
Markers are searched in whole frames, so this still works when one event carries the text
of several tokens (coalescing): each token gets the receive time of the event holding it.
Frames are never JSON-decoded (cheap, and identical for every relay and for the upstream).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from array import array
from dataclasses import dataclass, field

import aiohttp

MARKER = re.compile(rb"\[\[(\d{16})\]\]")


def percentiles(values, points=(50, 90, 99)) -> dict:
    data = sorted(values)
    if not data:
        return {f"p{p}": None for p in points} | {"n": 0, "max": None, "mean": None}
    out = {}
    for p in points:
        # Nearest-rank percentile.
        rank = max(1, -(-p * len(data) // 100))
        out[f"p{p}"] = data[rank - 1]
    out.update(n=len(data), max=data[-1], mean=sum(data) / len(data))
    return out


@dataclass
class PathStats:
    """Everything recorded for one path (through the relay, or straight to the upstream)."""

    ok: int = 0
    failed: int = 0
    errors: dict = field(default_factory=dict)
    ttft: array = field(default_factory=lambda: array("d"))
    latency: array = field(default_factory=lambda: array("d"))
    tokens: int = 0
    frames: int = 0  # SSE frames carrying at least one token
    durations: array = field(default_factory=lambda: array("d"))
    emit_rates: array = field(default_factory=lambda: array("d"))  # upstream's real pace
    # Moments (s since the run started, 0.1 s resolution) some token arrived > 100 ms late.
    late_at: set = field(default_factory=set)
    # Token latency by position in the answer: first token, tokens 2-5, the rest.
    by_position: tuple = field(default_factory=lambda: (array("d"), array("d"), array("d")))

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def summary(self) -> dict:
        ms = 1000.0
        return {
            "streams": self.ok + self.failed,
            "ok": self.ok,
            "failed": self.failed,
            "errors": self.errors,
            "tokens": self.tokens,
            "tokens_per_frame": round(self.tokens / self.frames, 3) if self.frames else None,
            "ttft_ms": {k: _scale(v, ms) for k, v in percentiles(self.ttft).items()},
            "token_latency_ms": {k: _scale(v, ms) for k, v in percentiles(self.latency).items()},
            "duration_s": percentiles(self.durations),
            "upstream_tokens_per_s": percentiles(self.emit_rates, (1, 50)),
            "late_over_100ms_at_s": sorted(self.late_at)[:300],
            "token_latency_ms_by_position": {
                name: {k: _scale(v, ms) for k, v in percentiles(values, (50, 99)).items()}
                for name, values in zip(("1", "2-5", "6+"), self.by_position, strict=True)
            },
        }


def _scale(value, factor):
    if value is None or isinstance(value, int):
        return value
    return round(value * factor, 3)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def _vm_rss_kb(path: str) -> int:
    with open(path) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError("no VmRSS")


class Run:
    def __init__(self, config: dict) -> None:
        self.c = config
        self.relay = PathStats()
        self.direct = PathStats()
        self.open_relay = 0
        # (t, open relay streams, server RSS kB, server CPU ticks)
        self.samples: list[tuple[float, int, int, int]] = []
        self.lags = array("d")
        self.done = False
        self.t0 = time.time()

    # --- One stream ------------------------------------------------------------------

    async def stream(self, session: aiohttp.ClientSession, kind: str, user: int, rnd: int) -> None:
        c = self.c
        stats = self.relay if kind == "relay" else self.direct
        question = f"请简单介绍一下流式输出 rate={c['rate']} n={c['count']} #u{user}r{rnd}"
        if kind == "relay":
            url = c["server_url"] + c.get("stream_path", "/api/chat/stream")
            body = {"question": question, "terminal": "miniprogram"}
            headers = {"Content-Type": "application/json"}
            tokens = c.get("tokens") or []
            if tokens:
                headers["Authorization"] = f"Bearer {tokens[user % len(tokens)]}"
            done_marks = (b'"type":"done"',)
            ok_marks = (b'"status":"done"',)
        else:
            url = c["upstream_url"] + "/chat/completions"
            body = {
                "model": "bench-model",
                "messages": [{"role": "user", "content": question}],
                "stream": True,
            }
            headers = {"Content-Type": "application/json"}
            done_marks = (b"data: [DONE]",)
            ok_marks = (b'"finish_reason": "stop"', b'"finish_reason":"stop"')
        expected = c["count"]
        count = 0
        first = None
        saw_done = saw_ok = saw_error = False
        latencies = []
        first_emit = last_emit = 0
        is_open = False
        started = time.time()
        try:
            async with session.post(url, data=json.dumps(body), headers=headers) as resp:
                if resp.status != 200:
                    await resp.read()
                    stats.fail(f"http_{resp.status}")
                    return
                if kind == "relay":
                    self.open_relay += 1
                    is_open = True
                buf = b""
                async for data in resp.content.iter_any():
                    now = time.time()
                    buf += data
                    cut = buf.rfind(b"\n\n")
                    if cut < 0:
                        continue
                    complete, buf = buf[: cut + 2], buf[cut + 2 :]
                    for frame in complete.split(b"\n\n"):
                        marks = MARKER.findall(frame)
                        if marks:
                            stats.frames += 1
                            count += len(marks)
                            for mark in marks:
                                emitted = int(mark)
                                latency = now - emitted / 1e6
                                latencies.append(latency)
                                position = len(latencies)
                                bucket = 0 if position == 1 else 1 if position <= 5 else 2
                                stats.by_position[bucket].append(latency)
                                if latency > 0.1:
                                    stats.late_at.add(round(now - self.t0, 1))
                                first_emit = first_emit or emitted
                                last_emit = emitted
                            if first is None:
                                first = now
                        elif frame:
                            if any(m in frame for m in done_marks):
                                saw_done = True
                            if any(m in frame for m in ok_marks):
                                saw_ok = True
                            if b"event: error" in frame or b'"type": "error"' in frame:
                                saw_error = True
        except asyncio.CancelledError:
            stats.fail("deadline")
            raise
        except TimeoutError:
            stats.fail("read_timeout")
            return
        except aiohttp.ClientError as exc:
            detail = getattr(exc, "strerror", None) or str(exc)[:60]
            phase = "before headers" if not is_open and kind == "relay" else "reading"
            stats.fail(f"{type(exc).__name__} ({detail}; {phase})")
            return
        finally:
            if is_open:
                self.open_relay -= 1
            stats.tokens += count
            stats.latency.extend(latencies)
        if saw_error:
            stats.fail("error_event")
        elif count != expected or not saw_done or not saw_ok:
            stats.fail(f"incomplete({count}/{expected},done={saw_done})")
        else:
            stats.ok += 1
            stats.ttft.append(first - started)
            if count > 1 and last_emit > first_emit:
                stats.emit_rates.append((count - 1) / ((last_emit - first_emit) / 1e6))
            stats.durations.append(time.time() - started)

    async def user(self, session, kind: str, user: int, delay: float) -> None:
        await asyncio.sleep(delay)
        for rnd in range(self.c["rounds"]):
            await self.stream(session, kind, user, rnd)

    # --- Samplers --------------------------------------------------------------------

    async def sample_rss(self) -> None:
        pid = self.c.get("server_pid")
        if not pid:
            return
        path = f"/proc/{pid}/status"
        t0 = time.monotonic()
        while not self.done:
            try:
                rss = _vm_rss_kb(path)  # /proc reads do not block on disk
                ticks = _cpu_ticks(pid)
                t = round(time.monotonic() - t0, 2)
                self.samples.append((t, self.open_relay, rss, ticks))
            except OSError:
                return
            await asyncio.sleep(0.1)

    async def loop_lag(self) -> None:
        interval = 0.02
        while not self.done:
            before = time.monotonic()
            await asyncio.sleep(interval)
            self.lags.append(time.monotonic() - before - interval)

    # --- The whole run ---------------------------------------------------------------

    async def run(self) -> dict:
        c = self.c
        cpu0, wall0 = os.times(), time.monotonic()
        self.t0 = time.time()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=c["read_timeout"])
        # A fresh connection per stream, as N separate clients would open: keep-alive reuse
        # across rounds only adds a race with the server's idle timeout (uvicorn closes an
        # idle connection after 5 s, with the next request unread when its loop lags).
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=None, force_close=c.get("fresh", True)
        )
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            samplers = [
                asyncio.create_task(self.sample_rss()),
                asyncio.create_task(self.loop_lag()),
            ]
            n, k, stagger = c["n"], c["direct"], c["stagger"]
            tasks = [
                asyncio.create_task(self.user(session, "relay", i, stagger * i / n))
                for i in range(n)
            ]
            tasks += [
                asyncio.create_task(self.user(session, "direct", i, stagger * (i + 0.5) / k))
                for i in range(k)
            ]
            _, pending = await asyncio.wait(tasks, timeout=c["deadline"])
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # Streams that never started before the deadline count as failed too.
            started_relay = self.relay.ok + self.relay.failed
            missing = n * c["rounds"] - started_relay
            for _ in range(max(0, missing)):
                self.relay.fail("not_started")
            self.done = True
            await asyncio.gather(*samplers, return_exceptions=True)
        cpu1 = os.times()
        return self.summary(
            cpu=(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            wall=time.monotonic() - wall0,
        )

    def summary(self, *, cpu: float, wall: float) -> dict:
        max_open = max((s[1] for s in self.samples), default=0)
        full = [s[2] for s in self.samples if max_open and s[1] >= 0.95 * max_open]
        step = max(1, len(self.samples) // 200)
        # Busiest second of the server (CPU ticks over 1 s windows of the 100 ms samples).
        peak_cores = None
        if len(self.samples) > 10:
            hz = os.sysconf("SC_CLK_TCK")
            peak_cores = max(
                (b[3] - a[3]) / hz / (b[0] - a[0])
                for a, b in zip(self.samples, self.samples[10:], strict=False)
                if b[0] > a[0]
            )
        return {
            "server_peak_cores_1s": round(peak_cores, 3) if peak_cores is not None else None,
            "relay": self.relay.summary(),
            "direct": self.direct.summary(),
            "max_open": max_open,
            "rss_kb_at_max_open": max(full) if full else None,
            "rss_kb_max_sampled": max((s[2] for s in self.samples), default=None),
            "rss_samples": self.samples[::step],
            "wall_s": round(wall, 3),
            "loadgen_cpu_s": round(cpu, 3),
            "loop_lag_ms": {
                k: _scale(v, 1000.0) for k, v in percentiles(self.lags, (50, 99)).items()
            },
        }


def main() -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(sys.argv[1]) as fh:
        config = json.load(fh)
    if config.get("handshake"):
        # Imports done: let the orchestrator take its "before" readings, then go.
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
    try:
        import uvloop

        result = uvloop.run(Run(config).run())
    except ImportError:
        result = asyncio.run(Run(config).run())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
