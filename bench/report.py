"""The targets the issue sets, the table printed at the end, and the JSON written beside it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GB = 1 << 30
MB = 1 << 20
NOISY_SHARE = 0.15


@dataclass
class Row:
    section: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "figure": self.figure,
            "value": self.value,
            "target": self.target or None,
            "met": self.met,
        }


@dataclass
class Report:
    profile: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        for section, build in (
            ("baseline", _baseline_rows),
            ("create", _create_rows),
            ("replies", _replies_rows),
            ("replies_2w", _replies_rows),
            ("burst", _burst_rows),
            ("burst_slow", _burst_rows),
            ("burst_2w", _burst_rows),
            ("pacing", _pacing_rows),
            ("pacing_twilio", _pacing_rows),
            ("backlog", _backlog_rows),
        ):
            if section in self.errors:
                rows.append(Row(section, "error", self.errors[section][:100], "", False))
            elif section in self.results:
                rows += build(self.results[section])
            if section in self.cpu:
                rows.append(_cpu_row(section, self.cpu[section], int(self.machine.get("nproc") or 1)))
        rows += _scale_out_rows(self.results)
        return rows

    def table(self) -> str:
        rows = self.rows()
        head = ("phase", "figure", "value", "target", "result")
        cells = [
            (r.section, r.figure, r.value, r.target, {True: "met", False: "NOT MET", None: ""}[r.met])
            for r in rows
        ]
        widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
        lines = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        previous = None
        for c in cells:
            shown = list(c)
            if c[0] == previous:
                shown[0] = ""
            previous = c[0]
            lines.append("  ".join(str(v).ljust(w) for v, w in zip(shown, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        finished = datetime.now(UTC)
        path = directory / f"{self.started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
        data = {
            "profile": self.profile,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_s": round((finished - self.started_at).total_seconds(), 1),
            "interrupted": self.interrupted,
            "machine": self.machine,
            "settings": self.settings,
            "notes": self.notes,
            "errors": self.errors,
            "results": self.results,
            "usage_after_phase": self.memory,
            "cpu_s_during_phase": self.cpu,
            "targets": [r.as_dict() for r in self.rows() if r.target],
        }
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        return path


def _cpu_row(section: str, cpu: dict[str, float], nproc: int) -> Row:
    skip = ("wall_s", "total", "machine_busy_s", "listen_overflows", "syn_retransmits", "fills_s")
    parts = {k: v for k, v in cpu.items() if k not in skip}
    shown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.5)
    if cpu.get("listen_overflows"):
        shown += f"; machine-wide {cpu['listen_overflows']} TCP listen overflows"
    # Other people's work on a shared machine takes CPU from the stack: say so where the figures suffer.
    capacity = cpu["wall_s"] * max(nproc, 1)
    if cpu.get("fills_s"):
        # The raw stack's fill is "others": it ran in the lead, with nothing measured.
        shown += f" (the backlog's fills ran {cpu['fills_s']:.0f} s of it, outside the measured windows)"
    elif capacity and cpu.get("others", 0) / capacity > NOISY_SHARE:
        shown += f" (other work took {100 * cpu['others'] / capacity:.0f}% of the machine: figures are noisy)"
    return Row(section, f"CPU s in {cpu['wall_s']:.0f} s wall", shown)


def _ms(summary: dict[str, Any]) -> str:
    if not summary or not summary.get("n"):
        return "n/a"

    def fmt(v: float) -> str:
        return f"{v:.1f}" if v < 10 else f"{v:.0f}"

    return f"p50 {fmt(summary['p50'])} ms, p99 {fmt(summary['p99'])} ms"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _create_rows(r: dict[str, Any]) -> list[Row]:
    service, ratio = r["service"], r.get("ratio")
    raw = r.get("raw") or {"per_s": 0.0, "latency_ms": {}, "attempted": 0, "count": 0, "errors": 0}
    p99 = service["latency_ms"].get("p99")
    setup = r["setup_per_s"]
    rows = [
        Row("create", "service creates/s", f"{service['per_s']:.0f}/s", ">= 250/s", service["per_s"] >= 250),
        Row(
            "create",
            "service create latency",
            _ms(service["latency_ms"]),
            "p99 < 250 ms",
            p99 is not None and p99 < 250,
        ),
        Row(
            "create",
            "worker caught up after the last create",
            _caught_up(r["worker_caught_up"])
            + (
                f" (set up {setup['service']:.0f}/s; raw {setup['raw'] or 0:.0f}/s)"
                if setup["service"]
                else ""
            ),
        ),
        Row(
            "create",
            "raw Temporal starts/s (turns between)",
            f"{raw['per_s']:.0f}/s" if raw["count"] else "n/a",
        ),
        Row("create", "raw start latency", _ms(raw["latency_ms"])),
        Row(
            "create",
            "ratio service / raw",
            "n/a" if ratio is None else f"{ratio:.2f}",
            ">= 0.85",
            ratio is not None and ratio >= 0.85,
        ),
    ]
    same = r.get("raw_same_work")
    if same:
        same_ratio = r.get("ratio_same_work")
        rows += [
            Row(
                "create",
                "raw starts with a reminder's input, attributes, summary",
                f"{same['per_s']:.0f}/s, {_ms(same['latency_ms'])}",
            ),
            Row(
                "create",
                "ratio service / raw same work (the service's own share)",
                "n/a" if same_ratio is None else f"{same_ratio:.2f}",
            ),
        ]
    if r.get("turns"):
        rows.append(
            Row("create", "rate of each turn", ", ".join(f"{t['side']} {t['rate']:.0f}" for t in r["turns"]))
        )
    if service["attempted"] < service["count"] or raw["attempted"] < raw["count"]:
        rows.append(
            Row(
                "create",
                "cut short by the time limit",
                f"service {service['attempted']}/{service['count']}, raw {raw['attempted']}/{raw['count']}",
            )
        )
    if service["errors"] or raw["errors"]:
        rows.append(
            Row("create", "errors service / raw", f"{service['errors']} / {raw['errors']}", "0", False)
        )
    return rows


def _baseline_rows(r: dict[str, Any]) -> list[Row]:
    # The figures show under burst; here only that it ran before the service's, and what it cost.
    parts = [name for name in ("burst",) if name in r]
    return [Row("baseline", "raw Temporal, before the service's", ", ".join(parts) or "nothing")]


def _caught_up(settle: dict[str, Any]) -> str:
    if settle["settled"]:
        return f"{settle['seconds']:.1f} s"
    return f"not within {settle['seconds']:.0f} s (backlog left)"


def _late(late: dict[str, Any], censored: bool) -> str:
    """Percentiles of lateness; with messages still missing when the wait ended, a bound, marked >=."""
    mark = ">=" if censored else ""
    return "  ".join(f"{k} {mark}{late[k]:.2f}" for k in ("p50", "p95", "p99", "max")) + " s"


def _burst_rows(r: dict[str, Any]) -> list[Row]:
    n, service, raw = r["count"], r["service"], r["raw"]
    latency = service.get("provider_latency_s") or 0
    section = f"burst +{latency * 1000:.0f} ms" if latency else "burst"
    if r.get("workers") == 2:
        section = "burst, 2 workers"
    late = service["lateness_s"]
    censored = service["censored"]
    rows = [
        Row(
            section,
            f"{n} due at one instant: created before it",
            f"yes, {service['margin_s']:.0f} s ahead"
            if service["created_before_instant"]
            else f"NO ({-service['margin_s']:.0f} s late)",
        ),
        Row(
            section,
            "worker had set them all up before T",
            "yes" if service["set_up_before_instant"] else "no: lateness includes the setup backlog",
        ),
        Row(section, "arrived at the fake", f"{service['arrived']}/{service['expected']}"),
        Row(
            section,
            "contacts texted twice",
            str(service.get("duplicates", "n/a")),
            "0",
            service.get("duplicates") == 0,
        ),
    ]
    if late.get("n"):
        text = _late(late, censored)
        # A p99 that is only a lower bound still decides the target when the bound is already over it.
        p99_known = not censored or service["missing"] <= 0.01 * service["expected"]
        if n <= 1000:
            rows.append(
                Row(
                    section,
                    "lateness (arrival at the fake - T)",
                    text,
                    "p99 < 5 s",
                    p99_known and late["p99"] < 5,
                )
            )
        else:
            rows.append(Row(section, "lateness (arrival at the fake - T)", text))
    drain = (
        _s(service["drain_s"])
        if not censored
        else f"> {_s(service['drain_s'])} ({service['missing']} missing)"
    )
    drain_ok = not censored and service["drain_s"] is not None and service["drain_s"] <= 30
    rows.append(
        Row(
            section,
            "drain (last arrival - T)",
            drain,
            "all within 30 s" if n > 1000 else "",
            drain_ok if n > 1000 else None,
        )
    )
    if not raw or latency:
        rows.append(Row(section, "raw Temporal (baseline)", "n/a"))
        return rows
    raw_late = raw["lateness_s"]
    rows.append(
        Row(
            section,
            "raw Temporal: lateness",
            _late(raw_late, raw["censored"]) if raw_late.get("n") else "n/a",
        )
    )
    raw_drain = _s(raw["drain_s"]) if not raw["censored"] else f"> {_s(raw['drain_s'])}"
    rows.append(Row(section, "raw Temporal: drain", f"{raw_drain} ({raw['arrived']}/{raw['expected']})"))
    ratio = r.get("drain_ratio")
    # A drain cut short is a lower bound: on top of the ratio it makes it a lower or an upper bound.
    bound = {(True, False): ">= ", (False, True): "<= ", (False, False): ""}.get((censored, raw["censored"]))
    shown = "n/a" if ratio is None or bound is None else f"{bound}{ratio:.2f}"
    rows.append(Row(section, "drain ratio service / raw", shown))
    return rows


def _server_share(r: dict[str, Any], raw: dict[str, Any]) -> str:
    """What the server spends on each reply, ours beside raw's: the server's share of the ratio, told apart
    from the CPU the service's own processes take on the same machine."""
    ours, theirs = r.get("server_cpu_ms_per_reply"), raw.get("server_cpu_ms_per_reply")
    if not ours or not theirs:
        return "n/a"
    return f"{ours:.1f} ms / {theirs:.1f} ms (raw / service {theirs / ours:.2f})"


def _by_part(cpu: dict[str, float] | None) -> str:
    """Each part's CPU per reply, the busiest first; "bench" is the load's own process (clients, fake
    provider, raw worker) and "machine" all the machine's busy time."""
    if not cpu:
        return "n/a"
    shown = sorted(((k, v) for k, v in cpu.items() if v >= 0.05 and k != "machine"), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} {v:.1f}" for k, v in shown)
    return f"{text}; machine {cpu['machine']:.1f}" if "machine" in cpu else text


def _replies_rows(r: dict[str, Any]) -> list[Row]:
    rate = r.get("replies_per_s")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["webhook_outcomes"].items()))
    # Cut short by the time limit, the rate is what arrived over the whole wait, not over all replies.
    bound = "" if r["complete"] else "partial: "
    sends = r["reminder_sends_per_s"]
    section = "replies, 2 workers" if r.get("workers") == 2 else "replies"
    raw, ratio = r.get("raw"), r.get("ratio")
    raw_rows = []
    if raw:
        raw_rate = raw.get("replies_per_s")
        raw_rows = [
            Row(
                section,
                "raw Temporal: signal -> upsert + local activity, per s",
                "n/a"
                if raw_rate is None
                else f"{'' if raw['complete'] else 'partial: '}{raw_rate:.0f}/s ({raw['answered']}/{raw['count']})",
            ),
            Row(
                section,
                "ratio service / raw",
                "n/a" if ratio is None else f"{ratio:.2f}",
                ">= 0.8",
                ratio is not None and ratio >= 0.8 and r["complete"] and raw["complete"],
            ),
            Row(section, "Temporal server CPU per reply: service / raw", _server_share(r, raw)),
            Row(section, "CPU ms per reply by process, service", _by_part(r.get("cpu_ms_per_reply"))),
            Row(section, "CPU ms per reply by process, raw", _by_part(raw.get("cpu_ms_per_reply"))),
        ]
    rows = [
        Row(
            "replies",
            "reminders sent at once: arrived / awaiting_reply",
            f"{r['reminders_arrived']} / {r['awaiting_reply_in_api']}"
            + (f" ({sends:.0f}/s from the first create)" if sends else ""),
        ),
        Row(
            "replies",
            f"replies/s ({r['count']} Yes -> confirmation texts)",
            "n/a"
            if rate is None
            else f"{bound}{rate:.0f}/s ({r['confirmations_arrived']} in {_s(r['first_to_last_s'])})",
            ">= 150/s",
            rate is not None and rate >= 150 and r["complete"],
        ),
        Row("replies", "webhook latency", _ms(r["webhooks"]["latency_ms"])),
        Row("replies", "webhook answers", outcomes),
        *raw_rows,
    ]
    for row in rows:
        row.section = section
    return rows


def _scale_out_rows(results: dict[str, Any]) -> list[Row]:
    """One worker process beside two, on the same server: burst drain and reply rate."""
    rows = []
    one, two = results.get("burst"), results.get("burst_2w")
    if one and two:
        rows.append(
            Row(
                "scale-out",
                f"burst drain, 1 worker / 2 workers ({one['count']} / {two['count']} due)",
                f"{_s(one['service']['drain_s'])} / {_s(two['service']['drain_s'])}"
                + (" (cut short)" if one["service"]["censored"] or two["service"]["censored"] else ""),
            )
        )
    one, two = results.get("replies"), results.get("replies_2w")
    if one and two:
        shown = [f"{x['replies_per_s']:.0f}/s" if x.get("replies_per_s") else "n/a" for x in (one, two)]
        rows.append(Row("scale-out", "replies/s, 1 worker / 2 workers", " / ".join(shown)))
    return rows


# Twilio's queue: a segment that waited longer than this was sent well over its number's rate.
TWILIO_QUEUE_WAIT_S = 0.5


def _pacing_rows(r: dict[str, Any]) -> list[Row]:
    sustained = r.get("per_s_sustained")
    twilio = r["provider"] == "twilio"
    section = "pacing twilio" if twilio else "pacing flowroute"
    per_number = ", ".join(f"{v['max_in_any_1s']}" for v in r["per_number"].values())
    target = 0.9 * r["capacity_per_s"]
    unit = "segments/s across the numbers" if twilio else "sends/s for the account"
    rows = [
        Row(
            section,
            f"{r['count']} due at once, {len(r['sending_numbers'])} numbers: {unit}",
            "n/a" if sustained is None else f"{sustained:.2f}/s sustained",
            f">= {target:.1f}",
            sustained is not None and sustained >= target,
        ),
        Row(section, "arrived / drain", f"{r['arrived']}/{r['count']} in {_s(r['drain_s'])}"),
    ]
    if twilio:
        # Twilio queues a number's segments over its rate and sends them on at that rate: pacing is kept
        # when nothing waits there long. Arrivals closer than a second (timing jitter between a send's
        # claim and its arrival) show in the second row, and cost a wait of that jitter.
        waits = [v.get("queue_wait_s", {}).get("max") for v in r["per_number"].values()]
        known = [w for w in waits if w is not None]
        rows += [
            Row(
                section,
                "longest wait in Twilio's queue, per number",
                ", ".join("n/a" if w is None else f"{w:.3f} s" for w in waits) or "n/a",
                f"< {TWILIO_QUEUE_WAIT_S} s",
                bool(known) and len(known) == len(waits) and max(known) < TWILIO_QUEUE_WAIT_S,
            ),
            Row(section, "most segments arriving in any 1 s, per number", per_number or "n/a"),
        ]
    else:
        rows += [
            Row(
                section,
                "429 answers from the fake",
                f"{r['refused_429']} of {r['attempts']} attempts",
                "0",
                r["refused_429"] == 0,
            ),
            Row(
                section,
                "most sends in any 1 s, whole account",
                str(r["max_in_any_1s_account"]),
                f"<= {r['limit']:.0f}",
                r["max_in_any_1s_account"] <= r["limit"],
            ),
            Row(section, "most sends in any 1 s, per number", per_number or "n/a"),
        ]
    return rows


def _backlog_rows(r: dict[str, Any]) -> list[Row]:
    after = r["usage_after"] or {"total": {"rss_bytes": math.inf, "pss_bytes": math.inf}}
    total = after["total"]["rss_bytes"]
    parts = ", ".join(
        f"{name} {v['rss_bytes'] / MB:.0f}/{v['pss_bytes'] / MB:.0f}"
        for name, v in after.items()
        if name != "total" and v["processes"]
    )
    by_id, listing = r["get_by_id_ms"], r["get_list_100_ms"]
    pss = after["total"]["pss_bytes"]
    ours = sum(after.get(n, {}).get("pss_bytes", 0) for n in ("worker", "api"))
    raw = (r.get("raw") or {}).get("usage_held")
    raw_pss = raw["total"]["pss_bytes"] if raw else None
    memory = [
        Row(
            "backlog",
            "PSS worker + API",
            f"{ours / MB:.0f} MB (worker {after.get('worker', {}).get('pss_bytes', 0) / MB:.0f} MB)",
            "< 400 MB",
            ours < 400 * MB,
        ),
        Row(
            "backlog",
            "PSS all processes (raw Temporal with as many sleeping, deferred)",
            f"{pss / MB:.0f} MB"
            + (f" ({raw_pss / MB:.0f} MB: {pss / raw_pss:.2f}x)" if raw_pss else " (raw n/a)"),
            "< 1 GB or <= 1.2x raw",
            pss < GB or (raw_pss is not None and pss <= 1.2 * raw_pss),
        ),
    ]
    if raw:
        memory.append(
            Row(
                "backlog",
                "raw Temporal PSS by process, MB",
                f"temporal {raw['temporal']['pss_bytes'] / MB:.0f}, worker {raw['worker']['pss_bytes'] / MB:.0f}"
                + f" (ours: temporal {after.get('temporal', {}).get('pss_bytes', 0) / MB:.0f})",
            )
        )
    elif r.get("raw_error"):
        memory.append(Row("backlog", "raw Temporal memory", r["raw_error"][:100]))
    return [
        *_stage_rows(r),
        Row(
            "backlog",
            f"{r['count']} pending: created",
            f"{r['create']['ok']} at {r['create']['per_s']:.0f}/s",
        ),
        Row("backlog", "worker caught up after the last create", _caught_up(r["settle"])),
        *_fill_rows(r),
        Row(
            "backlog",
            "RSS total (PSS)",
            f"{total / MB:.0f} MB ({after['total']['pss_bytes'] / MB:.0f} MB)",
            "< 2 GB",
            total < 2 * GB,
        ),
        # PostgreSQL's backends share its buffers: their RSS adds up to far more than they use together.
        Row("backlog", "RSS/PSS by part, MB", parts),
        *memory,
        Row("backlog", "disk used by DATA_DIR", f"{r['disk']['total_bytes'] / MB:.0f} MB"),
        Row(
            "backlog",
            "GET /reminder/{id}",
            _ms(by_id),
            "p99 < 20 ms",
            bool(by_id.get("n")) and by_id["p99"] < 20,
        ),
        Row(
            "backlog",
            "GET /reminder?limit=100",
            _ms(listing),
            "p99 < 50 ms",
            bool(listing.get("n")) and listing["p99"] < 50,
        ),
        *_reconcile_rows(r.get("reconcile")),
    ]


def _fill_rows(r: dict[str, Any]) -> list[Row]:
    """Where the fills ran: in their gates' openings (bursts' leads) and what was left for this phase."""
    fills = r.get("fills")
    if not fills:
        return []
    rows = []
    for name, rate in (
        ("service", r["create"].get("per_s")),
        ("raw", ((r.get("raw") or {}).get("start") or {}).get("per_s")),
    ):
        leads = [w for w in fills[name]["windows"] if w["why"] != "backlog phase"]
        rows.append(
            Row(
                "backlog",
                f"{name} fill, while nothing was measured",
                f"{fills[name]['gate_open_s']:.0f} s open: {sum(w['seconds'] for w in leads):.0f} s in"
                f" {len(leads)} burst leads, the rest in this phase; {rate or 0:.0f}/s over its openings",
            )
        )
    rows.append(
        Row("backlog", "fills finished in this phase after", f"{fills['finished_in_backlog_phase_s']:.0f} s")
    )
    return rows


def _reconcile_rows(passes: dict[str, Any] | None) -> list[Row]:
    if not passes:
        return []
    if "error" in passes:
        return [Row("backlog", "reconcile passes", passes["error"][:100])]
    rows = []
    for name in ("every_reminder", "periodic", "periodic_after_the_fill", "periodic_nothing_new"):
        if p := passes.get(name):
            cpu = p["cpu_s"]
            rows.append(
                Row(
                    "backlog",
                    f"reconcile pass, {name.replace('_', ' ')}",
                    f"{p['seconds']:.1f} s, {p['checked']} workflows listed, {p.get('rows_counted', 0)} rows"
                    f" counted, {p['orphans_checked']} described; CPU-s server {cpu.get('temporal', 0):.1f},"
                    f" bench {cpu.get('bench', 0):.1f}",
                )
            )
    return rows


def _stage_rows(r: dict[str, Any]) -> list[Row]:
    """Memory at each pending count on the way: the worker's RSS should not follow the reminders waiting."""
    stages = r.get("stages") or []
    if len(stages) < 2:
        return []
    raw = {st["pending"]: st["usage_held"] for st in (r.get("raw") or {}).get("stages", [])}
    worker = [st["usage"].get("worker", {}).get("rss_bytes", 0) for st in stages]
    # A reading taken while a burst's reminders were being armed holds their memory too: marked.
    marks = ["" if st.get("at_rest", True) else "*" for st in stages]
    totals = []
    for st in stages:
        mine = st["usage"].get("total", {}).get("pss_bytes", 0)
        theirs = raw.get(st["pending"], {}).get("total", {}).get("pss_bytes")
        totals.append(f"{st['pending']}: {mine / MB:.0f}" + (f" (raw {theirs / MB:.0f})" if theirs else ""))
    spread = max(worker) / min(worker) if min(worker) else math.inf
    return [
        Row(
            "backlog",
            "worker RSS at " + " / ".join(str(st["pending"]) for st in stages) + " pending",
            " / ".join(f"{w / MB:.0f}{m}" for w, m in zip(worker, marks, strict=True))
            + f" MB (largest {spread:.2f}x the smallest)"
            + (" (* read while a burst was being armed)" if any(marks) else ""),
            "within 20 %",
            spread <= 1.2,
        ),
        Row("backlog", "PSS all processes by pending, MB", ", ".join(totals)),
    ]
