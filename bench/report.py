"""The results as a rich table, a JSON document and the markdown summary ``latest.md``.

Every row carries its ratio to the peer (Quix Streams) and to the raw pipe where one applies,
and the goal it is held against (issues 4 and 14; the history rows: issue 21; failover: issue 22;
repartition: issue 23). Over 400 lines: one row builder per phase, kept in one module so that
every row of the table is formatted in one place.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.model import RunResults

__all__ = ["Row", "build_rows", "print_table", "write_json", "write_markdown"]

log = logging.getLogger(__name__)

_MB = 1_000_000  # the goal says MB: decimal megabytes (stricter than MiB)
_FULL_RESTORE = 1_000_000


@dataclass(frozen=True)
class Row:
    measure: str
    system: str
    value: str
    vs_peer: str = "—"
    vs_raw: str = "—"
    goal: str = ""
    vs_ks: str = "—"


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}×" if b else "—"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def build_rows(results: RunResults) -> list[Row]:
    rows: list[Row] = []
    tp = results.throughput
    quix = tp["quix"].rate if "quix" in tp else None
    raw = tp["rawpipe"].rate if "rawpipe" in tp else None
    ks = tp["kstreams"].rate if "kstreams" in tp else None
    for name in ("eventledger", "quix", "kstreams", "rawpipe"):
        measure = "throughput, commands/s (EOS)" if name != "rawpipe" else "throughput, commands/s"
        if f"throughput:{name}" in results.failures:
            rows.append(Row(measure, name, "FAILED"))
            continue
        if name not in tp:
            continue
        rate = tp[name].rate
        goal = ""
        if name == "eventledger":
            parts = []
            if quix:
                parts.append(f"≥ 2× peer {_mark(rate >= 2 * quix)}")
            if raw:
                parts.append(f"≥ 0.5× raw {_mark(rate >= 0.5 * raw)}")
            goal = ", ".join(parts)
        rows.append(
            Row(measure, name, f"{rate:,.0f}", _ratio(rate, quix), _ratio(rate, raw), goal,
                _ratio(rate, ks) if name != "kstreams" else "—")
        )  # fmt: skip
    rows += _latency_rows(results)
    rows += _e2e_rows(results, own_preloaded=tp.get("eventledger"))
    rows += _restore_rows(results) + _history_rows(results) + _failover_rows(results)
    return rows + _http_rows(results) + _repartition_rows(results)


def _latency_rows(results: RunResults) -> list[Row]:
    """The open loop: ours against the goals of issue 4 (absolute) and 14 (× the echo, below
    Kafka Streams); then the peers' own."""
    rows: list[Row] = []
    if "latency" in results.failures:
        rows.append(Row("latency", "eventledger", "FAILED"))
    elif results.latency is not None:
        lat = results.latency
        where = f"round trip at {lat.rate:,.0f}/s open loop"
        peer = results.peer_latency.get("kstreams")
        echo = results.peer_latency.get("echo")
        for q, absolute, times in (("p50", 5.0, 2.0), ("p99", 25.0, 3.0)):
            value = lat.percentiles_ms[q]
            goal = [f"≤ {absolute:.0f} ms {_mark(value <= absolute)}"]
            echo_q = echo.percentiles_ms[q] if echo else None
            ks_q = peer.percentiles_ms[q] if peer else None
            if echo_q:
                goal.append(f"≤ {times:.0f}× echo {_mark(value <= times * echo_q)}")
            if ks_q:
                goal.append(f"< Kafka Streams {_mark(value < ks_q)}")
            rows.append(
                Row(f"{where}, {q}", "eventledger", f"{value:.1f} ms", goal=", ".join(goal),
                    vs_raw=_ratio(value, echo_q), vs_ks=_ratio(value, ks_q))
            )  # fmt: skip
        rows.append(Row(f"{where}, max", "eventledger", f"{lat.max_ms:.1f} ms"))
        sent = lat.from_send_ms
        rows.append(
            Row(
                "  the same from the actual send call, p50 / p99 (sender lag left out)",
                "eventledger",
                f"{sent['p50']:.1f} / {sent['p99']:.1f} ms",
            )
        )
        if lat.answered < lat.sent:
            rows.append(Row("unanswered commands", "eventledger", f"{lat.sent - lat.answered:,}"))
    for peer_name in ("kstreams", "echo"):
        if f"latency:{peer_name}" in results.failures:
            rows.append(Row("latency", peer_name, "FAILED"))
        elif peer_name in results.peer_latency:
            lat = results.peer_latency[peer_name]
            where = f"round trip at {lat.rate:,.0f}/s open loop"
            for q in ("p50", "p99"):
                rows.append(Row(f"{where}, {q}", peer_name, f"{lat.percentiles_ms[q]:.1f} ms"))
            rows.append(Row(f"{where}, max", peer_name, f"{lat.max_ms:.1f} ms"))
            if lat.answered < lat.sent:
                rows.append(Row("unanswered commands", peer_name, f"{lat.sent - lat.answered:,}"))
    return rows


def _e2e_rows(results: RunResults, own_preloaded: Any) -> list[Row]:
    """Per (clients, window): throughput, round trips, broker CPU and requests per command;
    the ratio column "vs raw pipe" holds the raw echo's, "vs Kafka Streams" Kafka Streams'.
    Goals (issue 14), on eventledger's rate: ≥ 0.5× its own preloaded throughput of the same
    run, ≥ 0.3× the echo's, above Kafka Streams'."""
    rows: list[Row] = []
    for what in results.failures:
        if what.startswith("e2e:"):
            rows.append(Row("e2e", what.partition(":")[2], "FAILED"))
    by = {(r.system, r.clients, r.window): r for r in results.e2e}
    for r in results.e2e:
        echo = by.get(("echo", r.clients, r.window))
        ks = by.get(("kstreams", r.clients, r.window))
        own = r.system == "echo"
        setting = f"e2e {r.clients} client{'s' if r.clients > 1 else ''} × {r.window} in flight"
        goal = []
        if r.system == "eventledger":
            if own_preloaded is not None:
                preloaded = own_preloaded.rate
                goal.append(f"≥ 0.5× preloaded {_mark(r.rate >= 0.5 * preloaded)}")
            if echo is not None:
                goal.append(f"≥ 0.3× echo {_mark(r.rate >= 0.3 * echo.rate)}")
            if ks is not None:
                goal.append(f"> Kafka Streams {_mark(r.rate > ks.rate)}")
        rows.append(
            Row(f"{setting}, commands/s", r.system, f"{r.rate:,.0f}",
                vs_raw="—" if own or echo is None else _ratio(r.rate, echo.rate),
                goal=", ".join(goal),
                vs_ks="—" if r.system != "eventledger" or ks is None else _ratio(r.rate, ks.rate))
        )  # fmt: skip
        p = r.percentiles_ms
        rows.append(
            Row(f"{setting}, round trip p50 / p99 / p99.9", r.system,
                f"{p['p50']:.1f} / {p['p99']:.1f} / {p['p99.9']:.1f} ms")
        )  # fmt: skip
        cpu = r.broker_cpu_us_per_command
        rows.append(
            Row(f"{setting}, broker CPU per command", r.system,
                "n/a" if cpu is None else f"{cpu:,.0f} µs")
        )  # fmt: skip
        per = r.broker_requests_per_command
        if per is not None and r.broker_requests:
            top = ", ".join(
                f"{name} {n / r.answered:.2f}" for name, n in list(r.broker_requests.items())[:4]
            )
            rows.append(
                Row(f"{setting}, broker requests per command", r.system, f"{per:.2f} ({top})")
            )
        if r.cpu_us_per_command:
            spent = ", ".join(f"{role} {us:,.0f}" for role, us in r.cpu_us_per_command.items())
            busy = "" if r.machine_busy is None else f"; machine {r.machine_busy:.0%} busy"
            rows.append(Row(f"{setting}, CPU µs per command", r.system, spent + busy))
        if r.answered < r.commands:
            rows.append(Row(f"{setting}, unanswered", r.system, f"{r.commands - r.answered:,}"))
    return rows


def _restore_rows(results: RunResults) -> list[Row]:
    rows: list[Row] = []
    peer_restore = results.restore["quix"].rate if "quix" in results.restore else None
    for name in ("eventledger", "quix"):
        if f"restore:{name}" in results.failures:
            rows.append(Row("restore", name, "FAILED"))
            continue
        if name not in results.restore:
            continue
        r = results.restore[name]
        what = "snapshots/s" if name == "eventledger" else "changelog records/s"
        goal = f"≥ 300,000/s {_mark(r.rate >= 300_000)}" if name == "eventledger" else ""
        rows.append(
            Row(f"restore {r.keys:,} accounts, {what}", name, f"{r.rate:,.0f}",
                _ratio(r.rate, peer_restore), goal=goal)
        )  # fmt: skip
        rows.append(Row(f"restore {r.keys:,} accounts, seconds", name, f"{r.seconds:.2f} s"))
        if name == "eventledger":
            mb = r.rss_bytes / _MB
            goal = f"≤ 300 MB {_mark(mb <= 300)}" if r.keys >= _FULL_RESTORE else ""
            rows.append(Row(f"resident memory, actor holding {r.keys:,}", name, f"{mb:,.0f} MB",
                            goal=goal))  # fmt: skip
            idle = r.facts["idle actor rss_bytes"] / _MB
            rows.append(Row("resident memory, idle actor (baseline)", name, f"{idle:,.0f} MB"))
            rows += _id_rows(r)
    return rows


def _id_rows(r: Any) -> list[Row]:
    """The id memory's figures from the restore phase (none in results from before it)."""
    f = r.facts
    ids = f.get("ids remembered")
    if ids is None:
        return []
    mb = f["rss_bytes with the ids"] / _MB
    full = r.keys >= _FULL_RESTORE and ids >= 10_000_000
    return [
        Row(f"restore {ids:,} remembered ids (new disk), ids/s", "eventledger",
            f"{f['ids restore records/s']:,.0f}"),
        Row(f"restore {ids:,} remembered ids, seconds", "eventledger",
            f"{f['ids restore seconds']:.2f} s"),
        Row(f"resident memory, {r.keys:,} accounts + {ids:,} ids", "eventledger",
            f"{mb:,.0f} MB", goal=f"≤ 400 MB {_mark(mb <= 400)}" if full else ""),
        Row("bytes per remembered id: resident / on disk", "eventledger",
            f"{f['rss per remembered id (bytes)']:.1f} / "
            f"{f['disk per remembered id (bytes)']:.1f}"),
    ]  # fmt: skip


def _history_rows(results: RunResults) -> list[Row]:
    """Each history query on the short and the long account, through Ray and in process:
    p50s and long ÷ short, whose goal (issue 21) is at most 2."""
    if "history" in results.failures:
        return [Row("history", "eventledger", "FAILED")]
    h = results.history
    if h is None:
        return []
    rows = []
    for query in h.p50_ms:
        for where, local in (("through Ray", False), ("in process", True)):
            short, long = (h.in_process_p50_ms if local else h.p50_ms)[query]
            ratio = h.ratio(query, in_process=local)
            rows.append(
                Row(f"history: {query}, {where}, p50 at {h.short:,} → {h.long:,} events",
                    "eventledger", f"{short:.2f} → {long:.2f} ms ({ratio:.2f}×)",
                    goal=f"≤ 2× {_mark(ratio <= 2)}")
            )  # fmt: skip
    return rows


def _failover_rows(results: RunResults) -> list[Row]:
    """The kill of a partition's writer without and with a standby; the gap's goal (issue
    22, with a standby) is at most 1 s."""
    rows = [Row(f"failover ({w})", "eventledger", "FAILED")
            for w in results.failures if w.startswith("failover")]  # fmt: skip
    f = results.failover
    if f is None:
        return rows
    at = f"{f.keys:,} accounts, {f.ids:,} ids"
    for r in sorted(f.runs, key=lambda r: r.standbys):
        name = f"failover, {r.standbys} standby" + ("s" if r.standbys != 1 else "")
        goal = f"≤ 1 s {_mark(r.gap_seconds <= 1)}" if r.standbys else ""
        rows.append(Row(f"{name}: answer gap ({at})", "eventledger",
                        f"{r.gap_seconds:.2f} s", goal=goal))  # fmt: skip
        marks = [("answers again", r.kill_to_reply_seconds), ("back", r.kill_to_back_seconds)]
        if r.kill_to_record_seconds is not None:
            marks.insert(0, ("takeover recorded", r.kill_to_record_seconds))
        rows.append(
            Row(
                f"{name}: kill → " + " / → ".join(m for m, _ in marks),
                "eventledger",
                " / ".join(f"{t:.2f}" for _, t in marks) + " s",
            )
        )
        what = "takeover's steps" if r.standbys else "restart's restores"
        steps = ", ".join(f"{k} {v:,.0f}" for k, v in r.steps_ms.items())
        rows.append(Row(f"{name}: {what}, ms", "eventledger", steps))
    if f.gap_ratio is not None:
        rows.append(Row("failover: gap with a standby ÷ without", "eventledger",
                        f"{f.gap_ratio:.2f}×"))  # fmt: skip
    return rows


def _repartition_rows(results: RunResults) -> list[Row]:
    """The online growth: the switch, its pauses against the design's budget (a leg's batch
    ≤ 1 s), the moves' rate, the commands' latency before and during it; Kafka Streams
    cannot do it online (the peer row says why)."""
    rows = [
        Row("repartition", "eventledger", "FAILED") for w in results.failures if w == "repartition"
    ]
    r = results.repartition
    if r is None:
        return rows
    at = f"repartition {r.from_partitions} → {r.to_partitions}, {r.keys:,} accounts"
    rows.append(
        Row(
            f"{at}: switch, request → done (moving)",
            "eventledger",
            f"{r.switch_seconds:.1f} s ({r.moving_seconds:.1f} s)",
            vs_peer="no peer online",
        )
    )
    rows.append(
        Row(
            f"{at}: moves, slots moved / slots, accounts moved",
            "eventledger",
            f"{r.moves}, {r.slots_moved} / {r.slots}, {r.accounts_moved:,}",
        )
    )
    rows.append(
        Row(
            f"{at}: accounts moved per second of moving",
            "eventledger",
            f"{r.accounts_per_second:,.0f}",
        )
    )
    for leg in ("handoff", "install"):
        p = r.pauses.get(leg) or {}
        if p:
            rows.append(
                Row(
                    f"{at}: {leg} pause per move, p50 / max",
                    "eventledger",
                    f"{p['p50']:.0f} / {p['max']:.0f} ms",
                    goal=f"≤ 1 s {_mark(p['max'] <= 1000)}",
                )
            )
    per = r.pauses.get("partition_max") or {}
    if per:
        rows.append(
            Row(
                f"{at}: per partition, its longest pause, p50 / max over partitions",
                "eventledger",
                f"{r.pauses['partition_max_p50']:.0f} / {max(per.values()):.0f} ms",
            )
        )
    for window, when in (
        ("before", "before the switch"),
        ("growing", "while growing (request → first move)"),
        ("moving", "while moving (first move → done)"),
    ):
        gaps = r.answer_gaps_ms.get(window) or {}
        if gaps:
            rows.append(
                Row(
                    f"{at}: per partition, its longest answer gap {when}, "
                    "p50 / max over partitions",
                    "eventledger",
                    f"{gaps['p50']:.0f} / {gaps['max']:.0f} ms",
                )
            )
    for window in ("before", "during", "after"):
        lat = r.latency_ms.get(window) or {}
        if lat.get("n"):
            rows.append(
                Row(
                    f"{at}: deposits at {r.rate:,.0f}/s {window} the switch, p50 / p99",
                    "eventledger",
                    f"{lat['p50']:.1f} / {lat['p99']:.1f} ms (n={lat['n']:,.0f})",
                )
            )
    rows.append(Row(f"{at}: online", "kstreams", r.peer))
    return rows


def _http_rows(results: RunResults) -> list[Row]:
    """Each serving mode's ratios to the client and to the HTTP echo (issue 22's goals)."""
    h = results.http
    failed = [Row(f"http ({w})", "eventledger", "FAILED") for w in results.failures
              if w.startswith("http:")]  # fmt: skip
    if h is None:
        return failed
    rows = []
    if h.echo_rate is not None:
        rows.append(Row(f"http: echo limit, POST/s at {h.inflight} in flight", "echo",
                        f"{h.echo_rate:,.0f}"))  # fmt: skip
    for mode in h.modes:
        f, r = h.modes[mode]["figures"], h.ratios(mode)
        system = f"http {mode}"
        echo = r.get("post_vs_echo")
        rows += [
            Row(f"http: POST ÷ client e2e ({f['post_rate']:,.0f} / {f['client_rate']:,.0f}/s)",
                system, f"{r['post_vs_client']:.2f}×", vs_raw=f"{echo:.2f}×" if echo else "—",
                goal=f"≥ 0.5 {_mark(r['post_vs_client'] >= 0.5)}, ≥ 0.5× echo "
                f"{_mark(echo is not None and echo >= 0.5)}"),
            Row(f"http: GET ÷ client command e2e ({f['get_rate']:,.0f}/s)", system,
                f"{r['get_vs_client']:.2f}×", goal=f"≥ 1 {_mark(r['get_vs_client'] >= 1)}"),
            Row(f"http: client commands beside {h.get_rate:,.0f} GETs/s (open loop) ÷ alone "
                f"({f['client_beside_gets_rate']:,.0f} / {f['client_alone_rate']:,.0f}/s; "
                f"GETs answered {f['client_beside_gets_get_rate']:,.0f}/s, "
                f"{f['client_beside_gets_get_not_ok']} not 200)",
                system, f"{r['client_beside_gets']:.2f}×",
                goal=f"≥ 0.9 {_mark(r['client_beside_gets'] >= 0.9)}"),
            Row(f"http: client commands beside a closed loop of GETs "
                f"({f['client_beside_closed_gets_get_rate']:,.0f} GETs/s, "
                f"{f['client_beside_closed_gets_get_not_ok']} not 200) ÷ alone", system,
                f"{r['client_beside_closed_gets']:.2f}×", goal="(not a goal: unbounded reads)"),
            Row(f"http: p50 / p99 at {h.rate:,.0f}/s, HTTP (client), ms", system,
                f"{f['post_open_p50_ms']:.1f} / {f['post_open_p99_ms']:.1f} "
                f"({f['client_open_p50_ms']:.1f} / {f['client_open_p99_ms']:.1f})",
                goal=f"p50 ≤ client + 5 ms {_mark(r['p50_minus_client_ms'] <= 5)}"),
        ]  # fmt: skip
    return rows + failed


def print_table(console: Console, rows: list[Row], title: str) -> None:
    table = Table(title=title)
    for column, justify in (
        ("measure", "left"),
        ("system", "left"),
        ("value", "right"),
        ("vs Quix", "right"),
        ("vs raw pipe / echo", "right"),
        ("vs Kafka Streams", "right"),
        ("goal (issues 4, 14, 21, 22)", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        style = "bold red" if r.value == "FAILED" else None
        table.add_row(
            r.measure, r.system, r.value, r.vs_peer, r.vs_raw, r.vs_ks, r.goal, style=style
        )
    console.print(table)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def write_markdown(path: Path, document: dict[str, Any], rows: list[Row]) -> None:
    """The summary of a run: table, command, machine, versions, each system's config."""
    m = document["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    lines = [
        "# Benchmark results (issue 4)",
        "",
        f"Run `{document['run_id']}`, {document['started']}, command: `{document['command']}`.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_bytes'] / 2**30:.0f} GiB, "
        f"{m['platform']}; load average at start {load}. "
        "The broker, Ray and every system share these cores, and other work may run beside "
        "them: figures are noisy.",
        "",
        "| measure | system | value | vs Quix | vs raw pipe / echo | vs Kafka Streams | goal |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        *(
            f"| {r.measure} | {r.system} | {r.value} | {r.vs_peer} | {r.vs_raw} | {r.vs_ks} "
            f"| {r.goal} |"
            for r in rows
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in document["versions"].items()) + ".",
        "",
        "## Workload",
        "",
        f"`{json.dumps(document['expected'], ensure_ascii=False)}`",
        "",
        "## How each system ran",
        "",
        *(f"- {line}" for line in _briefs(document)),
        "",
    ]
    for name, result in document.get("throughput", {}).items():
        lines += [
            f"### {name}",
            "",
            "```json",
            json.dumps(result["config"], indent=2, ensure_ascii=False),
            "```",
            "",
        ]
        lines += [f"Facts: `{json.dumps(result['facts'], default=str, ensure_ascii=False)}`", ""]
    for name, result in (document.get("peer_latency") or {}).items():
        lines += [f"### latency: {name}", "", "```json",
                  json.dumps(result, indent=2, ensure_ascii=False), "```", ""]  # fmt: skip
    if document.get("e2e"):
        lines += ["### e2e", "", "```json"]
        lines.append(json.dumps(document["e2e"], indent=2, ensure_ascii=False))
        lines += ["```", ""]
    if document.get("latency"):
        lines += [
            "### latency",
            "",
            "```json",
            json.dumps(document["latency"], indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    for name, result in document.get("restore", {}).items():
        lines += [f"### restore: {name}", "", f"Method: {result['method']}.", ""]
        lines += [f"Facts: `{json.dumps(result['facts'], default=str, ensure_ascii=False)}`", ""]
    if document.get("history"):
        lines += ["### history", "", "```json"]
        lines.append(json.dumps(document["history"], indent=2, ensure_ascii=False))
        lines += ["```", ""]
    if document.get("failover"):
        lines += ["### failover", "", "```json"]
        lines.append(json.dumps(document["failover"], indent=2, ensure_ascii=False))
        lines += ["```", ""]
    if document.get("http"):
        lines += ["### http", "", "```json"]
        lines.append(json.dumps(document["http"], indent=2, ensure_ascii=False))
        lines += ["```", ""]
    if document.get("failures"):
        lines += ["## Failures", ""]
        lines += [f"- {k}: {v}" for k, v in document["failures"].items()]
        lines.append("")
    lines += [document["method"], ""]
    path.write_text("\n".join(lines))


def _briefs(document: dict[str, Any]) -> list[str]:
    """One line per system: the configuration that matters for the figures."""
    lines = []
    runs = document.get("throughput", {})
    if "eventledger" in runs:
        c = runs["eventledger"]["config"]
        lines.append(
            f"eventledger: {c['partitions']} partition actors on local Ray, one Kafka "
            f"transaction per batch of at most {c['batch_max_commands']} commands or "
            f"{c['batch_max_ms']} ms, producer linger.ms={c['producer'].get('linger.ms')}, "
            f"compression {c['producer'].get('compression.type')}."
        )
    if "quix" in runs:
        c = runs["quix"]["config"]
        lines.append(
            f"Quix Streams {c['versions'].get('quixstreams', '?')}: "
            f"processing_guarantee={c['processing_guarantee']}, commit_interval="
            f"{c['commit_interval_s']} s (Quix's default is 5 s; a checkpoint is one "
            f"transaction), {c['replicas (processes in one consumer group)']} processes in one "
            f"consumer group, {c['state']}; outputs: {c['outputs']}; producer "
            f"{c['producer_extra_config']}, consumer {c['consumer_extra_config']}."
        )
    if "kstreams" in runs:
        c = runs["kstreams"]["config"]
        lines.append(
            f"Kafka Streams {c['kafka-streams']}: processing.guarantee="
            f"{c['processing.guarantee']}, commit.interval.ms={c['commit.interval.ms']}, "
            f"{c['num.stream.threads']} stream threads, {c['state']}; outputs: {c['outputs']}; "
            f"deduplication: {c['deduplication']}."
        )
    if "rawpipe" in runs:
        c = runs["rawpipe"]["config"]
        lines.append(
            f"raw pipe: {c['processes']} processes, consume → produce per command "
            f"{c['per command']}, per batch of {c['batch']} {c['per consumed batch']}; "
            "no transactions, no state."
        )
    return lines


def results_json(results: RunResults) -> dict[str, Any]:
    return {
        "throughput": {k: v.to_json() for k, v in results.throughput.items()},
        "latency": results.latency.to_json() if results.latency else None,
        "peer_latency": {k: v.to_json() for k, v in results.peer_latency.items()},
        "e2e": [r.to_json() for r in results.e2e],
        "restore": {k: v.to_json() for k, v in results.restore.items()},
        "history": results.history.to_json() if results.history else None,
        "failover": results.failover.to_json() if results.failover else None,
        "http": results.http.to_json() if results.http else None,
        "repartition": results.repartition.to_json() if results.repartition else None,
        "failures": results.failures,
        "rows": [asdict(r) for r in build_rows(results)],
    }
