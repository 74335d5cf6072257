"""What the server software costs by itself, with no relay in it: CPU per request and per
SSE frame for daphne and uvicorn, started as `bench.run` starts them.

    .venv/bin/python -m bench.server_floor              # ~3 minutes; writes server-floor.md

`bench.run` compares the project with the baseline relay on the same server software, so
what the server itself spends on a request (parsing it, building the ASGI scope, logging
it, closing the connection) and on each frame (the ASGI send, chunked encoding, the socket
write) is paid by both sides and sets a floor under the project's ratio: a project answer
(one request, ~31 frames) costs at least that much whatever the relay does. This measures
the floor with a bare app (`bench/floor_app.py`) on the same launchers:

- request: POST with the stream endpoint's headers and a JSON body, empty SSE response;
- frame: 30 frames written back to back; per frame = (cost - request) / 30;
- lone frame: one stream at a time, a frame every coalescing window (67 ms), each when a
  byte from this process arrives on a second socket: a frame written by a process that
  slept since the last one and is woken by data, as a lone answer is woken by the model.

Needs nothing but the project's virtualenv (no database, no upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import processes
from bench.machine import machine_info
from bench.paths import PY, RESULTS, ROOT
from bench.processes import free_port, lower_niceness
from bench.procfs import proc_cpu_ns
from bench.progress import log

APP = "bench.floor_app:app"
FRAMES = 30
# Frames of one project answer in bench.run: 60 tokens at ~2 per coalescing window.
ANSWER_FRAMES = 31
CONCURRENCY = 20
_REQUEST = (
    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0.50\r\n"
    "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
    "Authorization: Bearer 1.u7QkR2xq9ZsVbH3mN8pL0aYw.c2lnbmF0dXJlLXBhcnQ\r\n"
    "Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
)
_BODY = '{"question":"这个药一天吃几次？","session_id":null}'

_DAPHNE = ["chatproject.serve_daphne", "-e", "tcp:port={port}:interface=127.0.0.1:backlog=2048"]
# name -> the command line after `python -m`, as bench.run starts each server.
SERVERS = {
    "daphne": _DAPHNE,
    "daphne -v 0": [*_DAPHNE, "-v", "0"],
    "uvicorn": [
        "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
        "--loop", "uvloop", "--http", "httptools", "--backlog", "2048", "--log-level", "warning",
    ],
}  # fmt: skip


def request_bytes(path: str) -> bytes:
    body = _BODY.encode()
    return _REQUEST.format(path=path, length=len(body), body=_BODY).encode()


async def fetch(port: int, request: bytes, frames: int) -> None:
    """One request, read to the end; it must have brought `frames` frames."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    response = await reader.read()
    writer.close()
    if not response.startswith(b"HTTP/1.1 200") or response.count(b"event: delta") != frames:
        raise RuntimeError(f"unexpected response: {response[:200]!r}")


async def fetch_lone(port: int, frames: int, window: float) -> None:
    """One stream whose frames are paced by a byte a window from a ticker socket here."""

    async def tick(reader, writer) -> None:
        for _ in range(frames):
            await asyncio.sleep(window)
            writer.write(b".")
        await writer.drain()
        await reader.read()  # the app closes its end when the stream ends
        writer.close()

    ticker = await asyncio.start_server(tick, "127.0.0.1", 0)
    tick_port = ticker.sockets[0].getsockname()[1]
    async with ticker:
        await fetch(port, request_bytes(f"/frames?n={frames}&tick_port={tick_port}"), frames)


async def fetch_many(port: int, frames: int, count: int, concurrency: int) -> None:
    """`count` requests for `frames` frames each, `concurrency` at a time."""
    request = request_bytes(f"/frames?n={frames}")
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await fetch(port, request, frames)

    await asyncio.gather(*(one() for _ in range(count)))


class FloorServer:
    def __init__(self, name: str, workdir: Path) -> None:
        self.port = free_port()
        args = [part.format(port=self.port) for part in SERVERS[name]]
        with (workdir / f"server-{name.replace(' ', '')}.log").open("ab") as server_log:
            self.process = subprocess.Popen(
                [PY, "-m", *args, APP],
                cwd=ROOT,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                preexec_fn=lower_niceness,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not start")

    def cpu_s(self) -> float:
        return sum(proc_cpu_ns(self.process.pid).values()) / 1e9

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure_server(name: str, workdir: Path, requests: int, lone_streams: int, window_ms: int):
    """CPU microseconds: per request, per frame back to back, per lone frame."""
    server = FloorServer(name, workdir)
    try:
        asyncio.run(fetch_many(server.port, 0, 200, CONCURRENCY))  # warm-up
        asyncio.run(fetch_many(server.port, FRAMES, 100, CONCURRENCY))
        asyncio.run(fetch_lone(server.port, 3, window_ms / 1000))

        def cpu_us_each(count: int, load) -> float:
            before = server.cpu_s()
            asyncio.run(load())
            return (server.cpu_s() - before) / count * 1e6

        per_request = cpu_us_each(
            requests, lambda: fetch_many(server.port, 0, requests, CONCURRENCY)
        )
        per_stream = cpu_us_each(
            requests // 2, lambda: fetch_many(server.port, FRAMES, requests // 2, CONCURRENCY)
        )

        async def lone_one_by_one() -> None:
            for _ in range(lone_streams):
                await fetch_lone(server.port, FRAMES, window_ms / 1000)

        per_lone_stream = cpu_us_each(lone_streams, lone_one_by_one)
    finally:
        server.stop()
    return {
        "request_us": per_request,
        "frame_us": (per_stream - per_request) / FRAMES,
        "lone_frame_us": (per_lone_stream - per_request) / FRAMES,
    }


def report(results: dict[str, list[dict]], meta: dict) -> str:
    lines = [
        "# Server software floor: CPU per request and per frame, no relay",
        "",
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, Linux "
        f"{meta['machine']['kernel']}, Python {meta['machine']['python']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['machine']['versions'].items())}",
        f"- {meta['requests']} requests per pass ({CONCURRENCY} at a time), {FRAMES} frames "
        f"per stream, {meta['lone_streams']} lone streams at one frame per "
        f"{meta['window_ms']} ms; {meta['passes']} passes, servers alternating; medians",
        "",
        "| server | CPU µs / request | CPU µs / frame, back to back | CPU µs / frame, lone "
        f"stream | one answer's floor (1 request + {ANSWER_FRAMES} lone frames), ms | passes "
        "(request µs) |",
        "|---|---|---|---|---|---|",
    ]
    for name, passes in results.items():
        request = statistics.median(p["request_us"] for p in passes)
        frame = statistics.median(p["frame_us"] for p in passes)
        lone = statistics.median(p["lone_frame_us"] for p in passes)
        each = ", ".join(f"{p['request_us']:.0f}" for p in passes)
        floor_ms = (request + ANSWER_FRAMES * lone) / 1000
        lines.append(
            f"| {name} | {request:.0f} | {frame:.1f} | {lone:.1f} | {floor_ms:.2f} | {each} |"
        )
    lines += [
        "",
        "`daphne` runs as `bench.run` runs it (daphne's default verbosity: an access-log line",
        "per request); `daphne -v 0` without the access log; `uvicorn` with `--no-access-log`,",
        "as in `bench.run`. See the module docstring of `bench/server_floor.py` for the method.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--lone-streams", type=int, default=10)
    parser.add_argument("--window-ms", type=int, default=67, help="the project's default")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    processes.NICE = args.nice
    names = args.servers.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-floor-"))  # server logs
    results: dict[str, list[dict]] = {name: [] for name in names}
    for number in range(1, args.passes + 1):
        for name in names:
            log(f"floor: {name}, pass {number}/{args.passes}")
            results[name].append(
                measure_server(name, workdir, args.requests, args.lone_streams, args.window_ms)
            )
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.server_floor " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "requests": args.requests,
        "lone_streams": args.lone_streams,
        "window_ms": args.window_ms,
        "passes": args.passes,
    }
    text = report(results, meta)
    (out / "server-floor.md").write_text(text)
    (out / "server-floor.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
