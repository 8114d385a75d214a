"""The run report as one self-contained HTML page, for whoever wants to see why a run was
slow or what failed.

:func:`render` builds it from the JSON report's data (what :meth:`Report.to_json` wrote,
already redacted), so the page shows the report's own numbers. Nothing is loaded: the
styles are inline, the charts are inline SVG drawn in Python (:mod:`bulkport.report_charts`),
there is no script, and the page's Content-Security-Policy forbids fetching anything.
Every value taken from the report is escaped.

Elements tests (and scripts) can find: each section has an id (``summary``, ``moved``,
``throughput``, ``hosts``, ``failures``, ``notes``, ``plan``, ``mirror``, ``actions``,
``details``); a number shown carries its exact value in ``data-value``; a count's card has
``data-count="<count name>"``, a host's row ``data-host``, a failure group ``data-group``
(its index) and ``data-failures`` (how many).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from bulkport import __version__
from bulkport.jobs.mirror import REMOVED_COUNTS
from bulkport.metrics import SERIES
from bulkport.report_charts import (
    BYTES_COLOUR,
    BYTES_FILL,
    FAILED_COLOUR,
    FAILED_FILL,
    FINISHED_COLOUR,
    FINISHED_FILL,
    MAX_COLOUR,
    P50_COLOUR,
    P95_COLOUR,
    RETRY_COLOUR,
    HostBar,
    Series,
    esc,
    host_chart,
    time_chart,
)

FAILURES_PER_GROUP = 5  # records shown under each reason; the JSON report has them all
GROUPS_SHOWN = 50
PLAN_PER_ACTION = 50
REMOVED_SHOWN = 200  # datasets a mirror removed, listed by name (the history has them all)
CHART_POINTS = 80  # buckets drawn at most (the JSON report keeps up to 300)
ACTIONS_SHOWN = 1000
NOTES_SHOWN = 200
FAILURE_BAND = "#fee2e2"  # a failure group's heading (only there: the screenshot test looks)
_LISTING_COUNTS = ("datasets_listed", "datasets_listed_by_source", "datasets_read_by_id")
_REMOVALS = {  # what each of a mirror's removal outcomes means
    "deleted": "deleted from the target",
    "hidden": "made private on the target ([options] on_delete = \"private\")",
    "absent": "already gone from the target",
    "not_owned": "left alone: no longer carries the mirror's ownership mark (edited or "
                 "replaced by hand?)",
    "kept": "kept on the target ([options] on_delete = \"keep\")",
}


# ---- failures, grouped by what went wrong ----

_URL = re.compile(r"https?://[^\s'\"<>()]+")
_PREFIXED_ID = re.compile(r"[a-z]{1,3}_[a-z0-9]{4,}")


def _variable_segment(segment: str) -> bool:
    """A URL path segment that names one record (an id, a slug with numbers), not an
    endpoint."""
    return (len(segment) >= 5 and any(c.isdigit() for c in segment)) or len(segment) >= 24 \
        or bool(_PREFIXED_ID.fullmatch(segment))


def _url_shape(match: re.Match[str]) -> str:
    url = match.group()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    path = "/".join("…" if _variable_segment(s) else s for s in parts.path.split("/"))
    return f"{parts.scheme}://{parts.netloc}{path}{'?…' if parts.query else ''}"


def reason_key(failure: Mapping[str, Any]) -> str:
    """What a failure's reason says once the record's own name and ids are left out: the
    failures it shares it with are one group."""
    reason = str(failure.get("reason", ""))
    subject = str(failure.get("unit", "")).partition(" ")[2]
    if len(subject) >= 4:
        reason = reason.replace(subject, "…")
    return _URL.sub(_url_shape, reason)


@dataclass
class FailureGroup:
    reason: str
    failures: list[Mapping[str, Any]] = field(default_factory=list)


def failure_groups(failures: Iterable[Mapping[str, Any]]) -> list[FailureGroup]:
    """The failures grouped by :func:`reason_key`, the largest group first."""
    groups: dict[str, FailureGroup] = {}
    for failure in failures:
        key = reason_key(failure)
        groups.setdefault(key, FailureGroup(key)).failures.append(failure)
    return sorted(groups.values(), key=lambda g: -len(g.failures))


# ---- formatting ----

def number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def human_bytes(size: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def short_bytes(size: float) -> str:
    """An axis label: 200 kB, 1.5 MB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.3g} B"


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _value(value: float, text: str | None = None, **attrs: str) -> str:
    """A number shown, with its exact value in ``data-value``."""
    extra = "".join(f' {name.replace("_", "-")}="{esc(v)}"' for name, v in attrs.items())
    return f'<span class="value" data-value="{esc(value)}"{extra}>{esc(text or number(value))}</span>'


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    if isinstance(value, (dict, list)):
        return f'<code>{esc(orjson.dumps(value).decode())}</code>'
    return esc(value)


def _label(count: str) -> str:
    return count.removeprefix("datasets_").replace("_", " ")


def _table(head: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    heads = "".join(f'<th{" class=n" if h.startswith("#") else ""}>{esc(h.lstrip("#"))}</th>'
                    for h in head)
    return f'<table class="{cls}"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _more(shown: int, total: int, what: str = "in the JSON report") -> str:
    return f'<p class="more">… and {number(total - shown)} more {esc(what)}</p>' \
        if total > shown else ""


def unit_word(data: Mapping[str, Any]) -> str:
    return "tokens" if data.get("kind") == "revoke-tokens" else "datasets"


def status(data: Mapping[str, Any]) -> str:
    return "ABORTED" if data.get("aborted") else ("OK" if data.get("ok") else "FAILED")


# ---- sections ----

def _summary(data: Mapping[str, Any]) -> str:
    state = status(data)
    counts = data.get("counts", {})
    dry = '<span class="badge dry" id="dry-run">DRY RUN</span>' if data.get("dry_run") else ""
    if data.get("aborted"):
        why = f'<p class="why" id="aborted">Stopped: {esc(data["aborted"])}</p>'
    elif state == "FAILED":
        why = (f'<p class="why">{number(counts.get("failed", 0))} failed: see '
               '<a href="#failures">the failures</a></p>')
    else:
        why = ""
    started = str(data.get("started", "")).replace("T", " ").replace("+00:00", " UTC")
    seconds = float(data.get("seconds", 0))
    requests = data.get("requests", {}).get("total", 0)
    facts = [("Kind", esc(data.get("kind", ""))),
             ("Started", f'<span id="started">{esc(started)}</span>'),
             ("Duration", _value(seconds, human_duration(seconds), id="duration")),
             ("Requests", _value(requests, id="requests-total")),
             ("Requests per second", _value(data.get("requests_per_second", 0),
                                             id="requests-per-second"))]
    meta = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)
    return (f'<header id="summary" class="status-{state.lower()}" data-status="{state}">'
            f'<div class="title"><span class="badge" id="status">{state}</span>{dry}'
            f'<h1>{esc(data.get("kind", ""))} · <span id="job">{esc(data.get("job", ""))}'
            f'</span></h1></div>{why}<dl class="meta">{meta}</dl></header>')


def _card(name: str, value: int, *, label: str | None = None, cls: str = "") -> str:
    if name == "bytes_transferred":
        shown = (_value(value, human_bytes(value)) +
                 f'<span class="exact">{number(value)} bytes</span>')
    else:
        shown = _value(value)
    return (f'<div class="card {cls}" data-count="{esc(name)}">{shown}'
            f'<span class="label">{esc(label or _label(name))}</span></div>')


def _count_group(name: str, data: Mapping[str, Any]) -> str:
    if name.startswith("datasets_"):
        return "Datasets"
    if name.startswith("would_"):
        return "Dry run: would"
    if name.startswith(("files_", "bytes_")):
        return "Files"
    return "Failed" if name == "failed" else _other(data)


def _other(data: Mapping[str, Any]) -> str:
    return "Tokens" if unit_word(data) == "tokens" else "Other"


def _moved(data: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = data.get("counts", {})
    order = ["Datasets", "Dry run: would", _other(data), "Files", "Failed"]
    groups: dict[str, list[str]] = {title: [] for title in order}
    for name in sorted(counts, key=lambda n: (n in _LISTING_COUNTS, -counts[n], n)):
        groups[_count_group(name, data)].append(name)
    groups["Failed"] = ["failed"]  # shown even when nothing failed
    parts = []
    for title, names in groups.items():
        if not names:
            continue
        cards = "".join(_card(n, counts.get(n, 0),
                              label=n.removeprefix("would_").replace("_", " ")
                              if title.startswith("Dry") else None,
                              cls="bad" if n == "failed" and counts.get(n) else "")
                        for n in names)
        parts.append(f'<div><h3>{esc(title)}</h3><div class="cards">{cards}</div></div>')
    return (f'<section id="moved"><h2>What moved</h2><div class="moved">{"".join(parts)}'
            "</div></section>")


def _legend(items: Iterable[tuple[str, str, str]]) -> str:
    return '<p class="legend">' + "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{esc(name)} {text}</span>'
        for colour, name, text in items) + "</p>"


def shown_timeline(timeline: Mapping[str, Any]) -> dict[str, Any]:
    """``timeline`` in at most :data:`CHART_POINTS` buckets (neighbours added up), so a
    chart shows the trend rather than every burst."""
    factor, points = 1, int(timeline["points"])
    while -(-points // factor) > CHART_POINTS:
        factor *= 2
    merged: dict[str, Any] = {"step_seconds": float(timeline["step_seconds"]) * factor,
                              "points": -(-points // factor)}
    for name in SERIES:
        values = list(timeline.get(name, []))
        merged[name] = [sum(values[i:i + factor]) for i in range(0, points, factor)]
    return merged


def _edges(timeline: Mapping[str, Any], seconds: float) -> tuple[list[float], list[float]]:
    """Bucket edges (seconds) and the width each bucket's rate is taken over: the last
    bucket ends with the run (not less than half a bucket, so a last instant is no spike)."""
    step, points = float(timeline["step_seconds"]), int(timeline["points"])
    end = seconds if seconds > (points - 1) * step else points * step
    edges = [i * step for i in range(points)] + [end]
    widths = [step] * (points - 1) + [max(end - (points - 1) * step, step / 2)]
    if points == 1:
        widths = [end]
    return edges, widths


def _throughput(data: Mapping[str, Any]) -> str:
    timeline = data.get("timeline")
    word = unit_word(data)
    head = '<section id="throughput"><h2>Throughput over time</h2>'
    if not timeline or not any(sum(timeline.get(s, [])) for s in SERIES):
        return head + f'<p class="muted">No {word} finished during the run.</p></section>'
    seconds = float(data.get("seconds", 0))
    timeline = shown_timeline(timeline)
    edges, widths = _edges(timeline, seconds)

    def rates(name: str) -> list[float]:
        return [v / w for v, w in zip(timeline.get(name, []), widths, strict=False)]

    finished, failed = sum(timeline["finished"]), sum(timeline["failed"])
    span = edges[-1]
    peak = max(rates("finished"), default=0.0)
    legend = _legend([(FINISHED_COLOUR, f"{word} finished", _value(finished, id="timeline-finished")),
                      (FAILED_COLOUR, "failed", _value(failed, id="timeline-failed"))])
    step = float(timeline["step_seconds"])
    caption = (f'<p class="muted">{esc(word.capitalize())} finished per second, in buckets of '
               f'{step:g} s: on average {number(round(finished / span, 1) if span else 0.0)}/s, '
               f'at most {number(round(peak, 1))}/s.</p>')
    chart = time_chart("throughput-chart", edges,
                       [Series("finished", rates("finished"), FINISHED_COLOUR, FINISHED_FILL),
                        Series("failed", rates("failed"), FAILED_COLOUR, FAILED_FILL)],
                       y_label=f"{word} per second")
    moved = sum(timeline.get("bytes", []))
    transfer = ""
    if moved:
        transfer = ('<h3>Bytes transferred per second</h3>'
                    + _legend([(BYTES_COLOUR, "bytes", f"{esc(human_bytes(moved))}")])
                    + time_chart("transfer-chart", edges,
                                 [Series("bytes", rates("bytes"), BYTES_COLOUR, BYTES_FILL)],
                                 y_label="bytes per second", height=200,
                                 y_format=lambda v: short_bytes(v) if v else "0"))
    return f"{head}{legend}{caption}{chart}{transfer}</section>"


def _hosts(data: Mapping[str, Any]) -> str:
    hosts: Mapping[str, Any] = data.get("hosts") or {
        host: {"requests": n, "retries": 0, "latency_ms": {"count": 0}}
        for host, n in data.get("requests", {}).get("per_host", {}).items()}
    head = '<section id="hosts"><h2>Requests, retries and latency per host</h2>'
    if not hosts:
        return head + '<p class="muted">No request was sent.</p></section>'
    rows, bars = [], []
    for host, h in hosts.items():
        latency = h.get("latency_ms", {})
        requests, retries = int(h.get("requests", 0)), int(h.get("retries", 0))
        share = f"{100 * retries / requests:.1f} %" if requests else "—"
        cells = [("requests", requests, number(requests)), ("retries", retries, number(retries)),
                 ("retry_share", round(retries / requests, 4) if requests else 0, share),
                 ("answered", latency.get("count", 0), number(latency.get("count", 0)))]
        cells += [(f"latency_{k}", latency.get(k, ""), _ms(latency.get(k)))
                  for k in ("mean", "p50", "p95", "max")]
        tds = "".join(f'<td class="n" data-field="{name}" data-value="{esc(value)}">{esc(text)}</td>'
                      for name, value, text in cells)
        rows.append(f'<tr data-host="{esc(host)}"><td class="host">{esc(host)}</td>{tds}</tr>')
        bars.append(HostBar(host, requests, retries, latency.get("p50"), latency.get("p95"),
                            latency.get("max")))
    table = _table(["Host", "#Requests", "#Retries", "#Retried", "#Answered", "#Mean",
                    "#p50", "#p95", "#Max"], rows, "hosts")
    legend = _legend([(FINISHED_COLOUR, "requests", ""), (RETRY_COLOUR, "retries", ""),
                      (P50_COLOUR, "latency p50", ""), (P95_COLOUR, "p95", ""),
                      (MAX_COLOUR, "max", "")])
    note = ('<p class="muted">A request is one attempt: each retry is one more. Latency runs '
            "from sending a request to its reply's status and headers (answered attempts "
            "only). Mean and max are exact; p50 and p95 are read from a histogram of log-spaced "
            "buckets (each about 19% wide).</p>")
    return f"{head}{table}{note}{legend}{host_chart('hosts-chart', bars)}</section>"


def _group(index: int, group: FailureGroup) -> str:
    shown = group.failures[:FAILURES_PER_GROUP]
    context = list(dict.fromkeys(k for f in shown for k in f if k not in ("unit", "reason")))
    exact = any(f.get("reason") != group.reason for f in shown)
    head = ["Unit", *context] + (["Reason"] if exact else [])
    rows = []
    for f in shown:
        cells = [f'<td>{esc(f.get("unit", ""))}</td>']
        cells += [f"<td>{_cell(f.get(k))}</td>" for k in context]
        if exact:
            cells.append(f'<td class="reason">{esc(f.get("reason", ""))}</td>')
        rows.append(f'<tr class="failure">{"".join(cells)}</tr>')
    n = len(group.failures)
    return (f'<div class="group" data-group="{index}" data-failures="{n}">'
            f'<div class="group-head"><span class="n">{_value(n, f"{number(n)}×")}</span>'
            f'<span class="reason">{esc(group.reason)}</span></div>'
            f'{_table(head, rows, "records")}{_more(len(shown), n)}</div>')


def _failures(data: Mapping[str, Any]) -> str:
    listed = data.get("failures", [])
    total = int(data.get("counts", {}).get("failed", 0))
    cls = "bad" if total else ""
    head = (f'<section id="failures" class="{cls}"><h2>Failures '
            f'{_value(total, id="failed-total")}</h2>')
    if not total:
        return head + '<p class="muted">Nothing failed.</p></section>'
    groups = failure_groups(listed)
    intro = (f'<p class="muted">{number(len(groups))} reason(s); the records\' own names and ids '
             "are left out of a reason (shown as …) to group them.</p>")
    if total > len(listed):
        intro += (f'<p class="muted">{number(total - len(listed))} more failures were counted '
                  "but not listed.</p>")
    body = "".join(_group(i, g) for i, g in enumerate(groups[:GROUPS_SHOWN]))
    return f"{head}{intro}{body}{_more(min(len(groups), GROUPS_SHOWN), len(groups), 'reasons')}</section>"


def _notes(data: Mapping[str, Any]) -> str:
    notes: Mapping[str, int] = data.get("notes", {})
    if not notes:
        return ""
    items = list(notes.items())[:NOTES_SHOWN]
    rows = (f'<tr class="note"><td class="n">{_value(n)}</td><td>{esc(text)}</td></tr>'
            for text, n in items)
    return (f'<section id="notes"><h2>Notes {_value(len(notes), id="notes-total")}</h2>'
            f'{_table(["#Times", "Note"], rows, "notes")}{_more(len(items), len(notes))}</section>')


def _plan(data: Mapping[str, Any]) -> str:
    plan: Sequence[Mapping[str, Any]] = data.get("plan", [])
    counts = data.get("counts", {})
    # A dry run that plans nothing says so, unless its verdicts are its actions (tokens).
    planned = any(name.startswith("would_") for name in counts) or data.get("actions")
    if not plan and (not data.get("dry_run") or planned):
        return ""
    by_action: dict[str, list[Mapping[str, Any]]] = {}
    for item in plan:
        by_action.setdefault(str(item.get("action")), []).append(item)
    parts = []
    for action, items in sorted(by_action.items()):
        total = int(counts.get(f"would_{action}", len(items)))
        shown = items[:PLAN_PER_ACTION]
        context = list(dict.fromkeys(k for i in shown for k in i if k not in ("action", "unit")))
        rows = ("<tr>" + f'<td>{esc(i.get("unit", ""))}</td>'
                + "".join(f"<td>{_cell(i.get(k))}</td>" for k in context) + "</tr>" for i in shown)
        parts.append(f'<div class="action" data-action="{esc(action)}"><h3>Would {esc(action)} '
                     f'{_value(total)}</h3>{_table(["Unit", *context], rows)}'
                     f'{_more(len(shown), total)}</div>')
    body = "".join(parts) or '<p class="muted">Nothing to do: the target is up to date.</p>'
    return f'<section id="plan"><h2>What the run would do</h2>{body}</section>'


def _mirror(data: Mapping[str, Any]) -> str:
    if data.get("kind") != "mirror":
        return ""
    counts = data.get("counts", {})
    rows = [f'<tr data-removal="{esc(outcome)}"><td class="n">{_value(counts.get(name, 0))}</td>'
            f"<td>{esc(_REMOVALS.get(outcome, outcome))}</td></tr>"
            for outcome, name in REMOVED_COUNTS.items() if counts.get(name) or outcome == "deleted"]
    parts = [_table(["#Datasets", "Removed from the source, so on the target"], rows)]
    removed: Sequence[Mapping[str, Any]] = data.get("removed", [])
    if removed:
        total = sum(counts.get(name, 0) for name in REMOVED_COUNTS.values())
        rows = [f'<tr data-removal="{esc(r.get("outcome", ""))}"><td>{esc(r.get("outcome", ""))}'
                f'</td><td>{_cell(r.get("target_id"))}</td><td>{_cell(r.get("source_id"))}</td>'
                "</tr>" for r in removed]
        parts.append('<h3 id="mirror-removed">The datasets</h3>'
                     + _table(["Outcome", "On the target", "Source id"], rows)
                     + _more(len(removed), total,
                             f"in the history (bulkport show JOB {data.get('run') or ''})"))
    if data.get("aborted"):
        parts.append(f'<p class="why" id="mirror-refused">Nothing more was written or removed: '
                     f'{esc(data["aborted"])}</p>')
    failed = [f for f in data.get("failures", []) if str(f.get("unit", "")).startswith("removing ")]
    if failed:
        rows = [f'<tr><td>{esc(f.get("unit", ""))}</td><td class="reason">{esc(f.get("reason", ""))}'
                "</td></tr>" for f in failed[:PLAN_PER_ACTION]]
        parts.append("<h3>Removals that failed</h3>" + _table(["Unit", "Reason"], rows)
                     + _more(min(len(failed), PLAN_PER_ACTION), len(failed)))
    return f'<section id="mirror"><h2>Deletions</h2>{"".join(parts)}</section>'


def _actions(data: Mapping[str, Any]) -> str:
    actions: Sequence[Mapping[str, Any]] = data.get("actions", [])
    if not actions:
        return ""
    title = "Tokens acted on" if data.get("kind") == "revoke-tokens" else "Acted on"
    outcomes: dict[str, int] = {}
    for row in actions:
        outcomes[str(row.get("outcome"))] = outcomes.get(str(row.get("outcome")), 0) + 1
    chips = "".join(f'<span class="chip" data-outcome="{esc(o)}">{esc(_label(o))} {_value(n)}</span>'
                    for o, n in sorted(outcomes.items(), key=lambda item: -item[1]))
    shown = actions[:ACTIONS_SHOWN]
    columns = list(dict.fromkeys(k for row in shown for k in row))
    rows = ("<tr>" + "".join(f"<td>{_cell(row.get(k))}</td>" for k in columns) + "</tr>"
            for row in shown)
    return (f'<section id="actions"><h2>{esc(title)} {_value(len(actions), id="actions-total")}'
            f'</h2><p class="chips">{chips}</p>{_table(columns, rows, "actions")}'
            f'{_more(len(shown), len(actions), "in the JSON report (and with --csv)")}</section>')


def _details(data: Mapping[str, Any]) -> str:
    details: Mapping[str, Any] = data.get("details", {})
    if not details:
        return ""
    rows = (f"<tr><th>{esc(k.replace('_', ' '))}</th><td>{_cell(v)}</td></tr>"
            for k, v in details.items())
    return f'<section id="details"><h2>Details</h2><table class="kv">{"".join(rows)}</table></section>'


def _nav(data: Mapping[str, Any], sections: Mapping[str, str]) -> str:
    names = {"moved": "What moved", "throughput": "Throughput", "hosts": "Hosts",
             "failures": f"Failures ({number(int(data.get('counts', {}).get('failed', 0)))})",
             "notes": f"Notes ({number(len(data.get('notes', {})))})", "plan": "Plan",
             "mirror": "Deletions", "actions": "Acted on", "details": "Details"}
    links = "".join(f'<a href="#{key}">{esc(names[key])}</a>' for key, html in sections.items()
                    if html)
    return f"<nav>{links}</nav>"


_CSS = """
:root{--text:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f3f4f6;--status:#15803d}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
 font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 24px 32px}
header,section{background:#fff;border:1px solid var(--line);border-radius:10px;
 padding:16px 22px;margin:0 0 16px}
header{border-left:8px solid var(--status)}
header.status-failed{--status:#b91c1c} header.status-aborted{--status:#b45309}
.title{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
h1{font-size:24px;margin:0;font-weight:650} h2{font-size:19px;margin:0 0 12px}
h3{font-size:14px;margin:14px 0 8px;color:var(--muted);text-transform:uppercase;
 letter-spacing:.04em}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;font-weight:700;font-size:14px;
 color:#fff;background:var(--status)}
.badge.dry{background:#4b5563}
.why{margin:10px 0 0;font-weight:600;color:var(--status);word-break:break-word}
dl.meta{display:flex;flex-wrap:wrap;gap:8px 36px;margin:14px 0 0}
dl.meta dt{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
dl.meta dd{margin:0;font-size:16px;font-weight:600}
nav{margin:0 0 16px;display:flex;flex-wrap:wrap;gap:6px 18px;font-size:14px}
nav a{color:#1d4ed8;text-decoration:none} nav a:hover{text-decoration:underline}
a{color:inherit}
.moved{display:flex;flex-wrap:wrap;gap:0 28px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;display:flex;
 flex-direction:column;min-width:150px}
.card .value{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}
.card .exact{font-size:12px;color:var(--muted)}
.card .label{color:var(--muted);font-size:13px}
.card.bad{border-color:#f87171;background:#fff7f7} .card.bad .value{color:#b91c1c}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em;
 font-weight:600}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.host,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.reason{word-break:break-word}
table.kv th{width:220px}
svg.chart{display:block;width:100%;height:auto;margin:6px 0 4px;font-size:12px}
svg.chart text{fill:#4b5563} svg.chart .axis-title{fill:#374151;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0 0 4px;font-size:14px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;
 vertical-align:-1px}
.muted{color:var(--muted)} .more{color:var(--muted);margin:6px 10px;font-size:14px}
section.bad{border-left:8px solid #b91c1c}
h2 .value{display:inline-block;margin-left:8px;padding:0 10px;border-radius:999px;
 background:#e5e7eb;font-size:15px;vertical-align:2px}
section.bad h2 .value{background:#b91c1c;color:#fff}
.group{border:1px solid #fca5a5;border-radius:8px;margin:0 0 12px;overflow:hidden}
.group-head{background:FAILURE_BAND;padding:8px 12px;display:flex;gap:14px;align-items:baseline}
.group-head .n .value{font-weight:700;color:#991b1b;font-size:16px}
.group-head .reason{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 font-size:13px;color:#7f1d1d}
.group table td,.group table th{padding-left:12px}
.chips{display:flex;flex-wrap:wrap;gap:8px}
.chip{border:1px solid var(--line);border-radius:999px;padding:2px 12px;font-size:14px}
.chip .value{font-weight:650}
footer{color:var(--muted);font-size:13px;text-align:center}
""".replace("FAILURE_BAND", FAILURE_BAND)


def render(data: Mapping[str, Any]) -> str:
    """The HTML page of the JSON report ``data`` (as :meth:`Report.to_json` wrote it)."""
    sections = {"moved": _moved(data), "throughput": _throughput(data), "hosts": _hosts(data),
                "failures": _failures(data), "notes": _notes(data), "plan": _plan(data),
                "mirror": _mirror(data), "actions": _actions(data), "details": _details(data)}
    title = f"{status(data)} · {data.get('kind', '')} {data.get('job', '')} · bulkport report"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            # Nothing is fetched, whatever the report holds: no script, image, font or frame.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            f"{_summary(data)}{_nav(data, sections)}{''.join(sections.values())}"
            f"<footer>bulkport {esc(__version__)} · times in UTC · every number here is the "
            "run's JSON report's</footer></main></body></html>\n")
