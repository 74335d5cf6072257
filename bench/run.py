"""Relay cost and capacity benchmark (issue #6): the project's stream endpoint against the
usual SDK relay, same machine, same run.

    .venv/bin/python -m bench.run                      # full suite, ~16 minutes on 2 cores
    .venv/bin/python -m bench.run --quick              # N = 1 and N = 100 only
    .venv/bin/python -m bench.run --scenarios n1,n500 --servers daphne,baseline
    .venv/bin/python -m bench.run --capacity           # also search N for each server

Writes bench/results/latest.md (tables, machine, date, command) and latest.json (every
figure). Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and, unless
--no-redis, Redis on 127.0.0.1:6379. Processes, all on 127.0.0.1, each its own:

- the upstream (bench/upstream_proc.py), one for the whole run;
- the server under test, started fresh for every (variant, scenario): one daphne or
  uvicorn process serving either the project (chatproject.asgi) or the baseline relay
  (bench/baseline_relay.py), so CPU, RSS and its high-water mark belong to that scenario;
- the load generator (bench/loadgen.py), fresh for every scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import processes
from bench.capacity import search_capacity
from bench.database import (
    DB_NAME,
    database_create,
    database_drop,
    redis_keys_delete,
    wait_for_no_backends,
)
from bench.machine import machine_info
from bench.measurement import measure
from bench.paths import RESULTS, ROOT
from bench.processes import Server, Upstream, Variant, database_migrate, login
from bench.progress import log
from bench.report import brief, report
from bench.scenarios import (
    CAPACITY_STEPS,
    DEFAULT_SCENARIOS,
    QUICK_SCENARIOS,
    SCENARIOS,
    Scenario,
    scenario_parsed,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scenarios", default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (or any nK: K answers at 30 tok/s)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", default="daphne,uvicorn,baseline",
        help="server software (daphne, uvicorn) and `baseline` to also run the baseline relay",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="N = 1 and N = 100 only")
    parser.add_argument(
        "--capacity", action="store_true",
        help=f"also search N in {CAPACITY_STEPS} (30 tok/s) until a run fails the targets",
    )  # fmt: skip
    parser.add_argument("--no-redis", action="store_true", help="project server without Redis")
    parser.add_argument(
        "--profile", action="store_true",
        help="attach py-spy to project servers (results are then not written to latest.*)",
    )  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
        help="niceness of the server, upstream and load generator (default -10 as root, so "
        "other work on a shared machine disturbs less; 0 to disable)",
    )  # fmt: skip
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop `{DB_NAME}`")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="answers per virtual user in every scenario (less noise in A/B comparisons)",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=0,
        help="alternating passes per scenario, pooled for the CPU ratio (default: 3 for n1 "
        "and n100, else 1)",
    )
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also serve the project at this commit (a temporary git worktree), alternating "
        "with the code as it is: the report gains a this-code-vs-REF table",
    )
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument(
        "--render", action="store_true",
        help="only rewrite latest.md from latest.json (after a change to the report)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        data = json.loads((Path(args.out) / "latest.json").read_text())
        (Path(args.out) / "latest.md").write_text(report(data["runs"], data["meta"]))
        log(f"rewrote {Path(args.out) / 'latest.md'} from latest.json")
        return 0
    processes.NICE = args.nice
    started = time.monotonic()
    command = "python -m bench.run" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    names = _scenario_names(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    compare_root = None
    if args.compare:
        compare_root = workdir / "compare"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(compare_root), args.compare],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    variants = _variants(args, compare_root)
    args.secret_key = secrets.token_urlsafe(50)
    args.redis_prefix = f"bench-{secrets.token_hex(4)}"
    args.metrics_dir = str(workdir / "prometheus")
    Path(args.metrics_dir).mkdir()

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {workdir}; variants {[v.name for v in variants]}; scenarios {names}")
    machine = machine_info()

    log(f"creating database {DB_NAME} and migrating")
    database_create()
    database_migrate(args, workdir)
    upstream = Upstream(workdir)
    ctx = {"args": args, "upstream": upstream, "workdir": workdir, "tokens": []}
    runs: list[dict] = []
    problems: list[str] = []

    def attempt(variant: Variant, scenario: Scenario, n: int, pass_number: int = 1) -> dict | None:
        try:
            run = measure(variant, scenario, n, ctx, profile=args.profile, pass_number=pass_number)
        except Exception as exc:  # one broken row must not lose the others
            problems.append(f"{variant.name} {scenario.name} N={n} pass {pass_number}: {exc}")
            log(f"  FAILED: {exc}")
            return None
        runs.append(run)
        log(brief(run))
        return run

    try:
        if any(v.app == "project" for v in variants):
            server = Server(Variant("daphne", "project"), upstream, args, workdir, "login")
            try:
                ctx["tokens"] = login(server)
            finally:
                server.stop()
            wait_for_no_backends()
        for name in names:
            scenario = SCENARIOS[name]
            for pass_number in range(1, scenario.passes + 1):
                for variant in variants:
                    log(f"{variant.name} {name} (N={scenario.n}) pass {pass_number}"
                        f"/{scenario.passes}")  # fmt: skip
                    attempt(variant, scenario, scenario.n, pass_number)
        if args.capacity:
            for variant in variants:
                search_capacity(variant, runs, attempt)
    finally:
        upstream.stop()
        if compare_root is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(compare_root)], cwd=ROOT,
                check=False, capture_output=True,
            )  # fmt: skip
        if not args.no_redis:
            redis_keys_delete(args.redis_prefix)
        if not args.keep_db:
            with contextlib.suppress(Exception):
                database_drop()
    meta = {
        "date": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine,
        "redis": not args.no_redis,
        "nice": args.nice,
        "duration_s": time.monotonic() - started,
        "scenarios": {n: SCENARIOS[n].__dict__ for n in names},
        "logs": str(workdir),
        "problems": problems,
        "compare": args.compare,
    }
    text = report(runs, meta)
    if args.profile:
        log("profiling run: latest.* left untouched")
        print(text)
        return 0
    (out_dir / "latest.md").write_text(text)
    (out_dir / "latest.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    log(f"wrote {out_dir / 'latest.md'} and latest.json in {meta['duration_s']:.0f} s")
    print(text)
    return 0


def _scenario_names(args) -> list[str]:
    """The scenarios to run, registered in SCENARIOS with --rounds and --passes applied."""
    names = QUICK_SCENARIOS if args.quick else [s for s in args.scenarios.split(",") if s]
    for name in names:
        if name not in SCENARIOS and (parsed := scenario_parsed(name)) is not None:
            SCENARIOS[name] = parsed
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenarios: {unknown}")
    for name in names:
        if args.rounds > 0:
            SCENARIOS[name] = replace(SCENARIOS[name], rounds=args.rounds)
        if args.passes > 0:
            SCENARIOS[name] = replace(SCENARIOS[name], passes=args.passes)
    return names


def _variants(args, compare_root: Path | None) -> list[Variant]:
    """Per server software: the project, the project at --compare's commit, the baseline."""
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    software = [s for s in wanted if s in ("daphne", "uvicorn")] or ["daphne"]
    variants = []
    for sw in software:
        variants.append(Variant(sw, "project"))
        if compare_root is not None:
            variants.append(Variant(sw, "compare", compare_root, args.compare))
        if "baseline" in wanted:
            variants.append(Variant(sw, "baseline"))
    return variants


if __name__ == "__main__":
    sys.exit(main())
