"""The report's verdicts: issue #6's targets per server software (CPU per token against
the baseline pooled over passes, capacity, TTFT, memory, DB writes) and the `--compare`
table (this code against another commit)."""

from __future__ import annotations

import statistics

from bench.capacity import (
    HELD_FRACTION,
    LATENCY_P99_LIMIT_MS,
    TTFT_ADDED_P99_LIMIT_MS,
    capacity_of,
)
from bench.scenarios import CAPACITY_RESOLUTION, CAPACITY_STEPS, SCENARIOS


def pooled_cpu_ratio(
    runs: list[dict], scenario: str, n: int, of: str = "project", to: str = "baseline"
) -> tuple[float, list[float]] | None:
    """One relay's CPU per token over another's (apps `of` and `to`), pooled over the
    passes both completed (of one server software), and each pass's own ratio."""
    rows: dict[str, dict[int, dict]] = {of: {}, to: {}}
    for r in runs:
        if (
            r["app"] in rows and r["scenario"] == scenario and r["n"] == n
            and r["tokens"] and r["server_cpu_s"]
        ):  # fmt: skip
            rows[r["app"]][r.get("pass", 1)] = r
    both = [p for p in rows[of] if p in rows[to]]
    if not both:
        return None

    def per_token(app: str) -> float:
        picked = [rows[app][p] for p in both]
        return sum(r["server_cpu_s"] for r in picked) / sum(r["tokens"] for r in picked)

    each = [rows[of][p]["cpu_s_per_1k_tokens"] / rows[to][p]["cpu_s_per_1k_tokens"] for p in both]
    return per_token(of) / per_token(to), each


def targets_section(runs: list[dict]) -> list[str]:
    lines = [
        "",
        "## Targets of issue #6",
        "",
        "| server | CPU / 1k tokens vs baseline (per scenario) | capacity at 30 tok/s: project "
        "vs baseline | TTFT overhead at N=1 (p50) | RSS / open stream at N=1000 "
        "| DB writes / answer |",
        "|---|---|---|---|---|---|",
    ]
    for software in sorted({r["software"] for r in runs}):
        mine = [r for r in runs if r["software"] == software]
        project = [r for r in mine if r["app"] == "project"]
        if not project:
            continue
        has_baseline = any(r["app"] == "baseline" for r in mine)
        ratios = []
        for scenario, n in dict.fromkeys((r["scenario"], r["n"]) for r in project):
            if SCENARIOS.get(scenario) and SCENARIOS[scenario].memory_only:
                continue
            found = pooled_cpu_ratio(mine, scenario, n)
            if found is None:
                continue
            pooled, each = found
            mark = "✅" if pooled <= 1 / 3 else "❌"
            detail = f" (passes {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else ""
            ratios.append(f"{scenario}: {pooled:.3f}×{detail} {mark}")
        cap_p, capped_p = capacity_of(runs, f"project/{software}")
        cap_b, capped_b = capacity_of(runs, f"baseline/{software}")
        if has_baseline:
            ok = cap_p >= 3 * cap_b and cap_p > 0
            cap = (
                f"{cap_p}{'' if capped_p else '+'} vs {cap_b}{'' if capped_b else '+'} "
                f"{'✅' if ok else '❌'} (target ≥ 3×)"
            )
        else:
            cap = f"{cap_p}{'' if capped_p else '+'} (no baseline run)"
        n1_added = [
            r["ttft_added_p50_ms"]
            for r in project
            if r["scenario"] == "n1" and r["ttft_added_p50_ms"] is not None
        ]
        ttft = "–"
        if n1_added:
            added = statistics.median(n1_added)  # of the passes
            mark = "✅" if added <= 20 else "❌"
            ttft = f"{added:.1f} ms {mark} (≤ 20)"
        rss_parts = []
        for r in project:
            if r["n"] == 1000 and r["rss_kb_per_open_stream"] is not None:
                mark = "✅" if r["rss_kb_per_open_stream"] <= 64 else "❌"
                rss_parts.append(
                    f"{r['scenario']}: {r['rss_kb_per_open_stream']:.0f} KB {mark} "
                    f"({r['max_open_streams']} open)"
                )
        rss = "; ".join(rss_parts) + " (≤ 64)" if rss_parts else "–"
        writes = sorted({round(r["db_writes_per_answer"], 1) for r in project})
        lines.append(
            f"| {software} | {'; '.join(ratios) or '–'} (target ≤ 0.33×) | {cap} | {ttft} "
            f"| {rss} | {', '.join(map(str, writes))} |"
        )
    lines += [
        "",
        "Capacity: the largest N such that every steady 30 tokens/s run up to it had 0 failed",
        f"streams and added token latency p99 ≤ {LATENCY_P99_LIMIT_MS:.0f} ms (issue #6), and also",
        f"held ≥ {HELD_FRACTION:.0%} of N streams open at once with added TTFT p99 ≤ "
        f"{TTFT_ADDED_P99_LIMIT_MS:.0f} ms (added here: an overloaded server otherwise passes by",
        f"admitting new streams slowly). The steps are {', '.join(map(str, CAPACITY_STEPS))},",
        "then the gap between the last N that passed and the first that failed is halved",
        f"down to about an eighth of the former (at least {CAPACITY_RESOLUTION}).",
        "A failed run (a scenario's own n500, n1000 included) is repeated once and judged",
        "by the repeat; `+`: no larger N failed, so the real figure may be higher.",
    ]
    return lines


def compare_section(runs: list[dict], ref: str | None) -> list[str]:
    """`--compare`: the project's CPU per token against the same project at another
    commit, in alternating passes of the same run (a change's effect, without the
    run-to-run drift that two separate runs carry)."""
    if not ref:
        return []
    lines = [
        "",
        f"## This code against `{ref}`",
        "",
        "CPU per 1k tokens of the project as it is, over the project at that commit: same",
        "server software, passes alternating, pooled (below 1: this code is leaner).",
        "",
        "| server | scenario | ratio (each pass) |",
        "|---|---|---|",
    ]
    for software in sorted({r["software"] for r in runs}):
        mine = [r for r in runs if r["software"] == software]
        for scenario, n in dict.fromkeys((r["scenario"], r["n"]) for r in mine):
            found = pooled_cpu_ratio(mine, scenario, n, of="project", to="compare")
            if found is not None:
                pooled, each = found
                lines.append(
                    f"| {software} | {scenario} | {pooled:.3f} "
                    f"({', '.join(f'{x:.3f}' for x in each)}) |"
                )
    return lines
