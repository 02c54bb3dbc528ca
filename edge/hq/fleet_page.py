"""Server-rendered HTML of the fleet page and a gateway's page: no build step, no external
assets, readable without JavaScript.

The first render is the whole table (sorted and filtered by the query string); the inline
script then re-sorts and filters in place and refreshes from `/api/fleet`. Every value
from a gateway is escaped here (`html.escape`) or set as text by the script, never as
markup. Times show relative ("3 min ago") with absolute UTC on hover.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from edge.contract.timefmt import duration, iso

FILTERS = ("all", "online", "offline", "alerting")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False


COLUMNS = (
    Column("store_id", "Store"),
    Column("gateway_id", "Gateway"),
    Column("state", "State"),
    Column("state_age_s", "Since", numeric=True),
    Column("health_age_s", "Last health", numeric=True),
    Column("outbox_pending", "Outbox", numeric=True),
    Column("oldest_pending_now_s", "Oldest pending", numeric=True),
    Column("open_alerts", "Open alerts", numeric=True),
    Column("version", "Version"),
)
SORT_KEYS = {c.key for c in COLUMNS}

CSS = """
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #c62828; --warn: #b26a00;
  --muted: #6b7280; --line: #d0d7de; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th a { color: inherit; text-decoration: none; }
th[aria-sort="ascending"] a::after { content: " \\25B2"; }
th[aria-sort="descending"] a::after { content: " \\25BC"; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; color: #fff;
  background: var(--muted); }
.badge.online { background: var(--ok); } .badge.offline { background: var(--bad); }
.badge.critical { background: var(--bad); } .badge.warning { background: var(--warn); }
.badge.raised { background: var(--warn); } .badge.cleared { background: var(--ok); }
.summary { display: flex; gap: 1rem; flex-wrap: wrap; margin: .5rem 0 1rem; padding: 0; }
.summary li { list-style: none; border: 1px solid var(--line); border-radius: .4rem;
  padding: .4rem .8rem; }
.summary b { display: block; font-size: 1.4rem; }
nav.filters a { margin-right: .6rem; }
nav.filters a.active { font-weight: bold; text-decoration: none; }
.muted { color: var(--muted); }
table#health { width: auto; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.facts dt { color: var(--muted); }
svg.chart { width: 100%; max-width: 720px; height: auto; border: 1px solid var(--line); }
svg.chart .depth { stroke: #0969da; } svg.chart .oldest { stroke: #bf3989; }
svg.chart polyline { fill: none; stroke-width: 2; }
svg.chart text { font-size: 11px; fill: currentColor; }
"""

FLEET_JS = """
(() => {
  const table = document.getElementById("fleet");
  const body = table.tBodies[0];
  const cfg = table.dataset;
  let sortKey = cfg.sort, sortDir = cfg.dir, filter = cfg.filter;
  let data = JSON.parse(document.getElementById("fleet-data").textContent);
  const cols = [...table.tHead.rows[0].cells].map(th => th.dataset);

  function dur(s) {
    if (s === null || s === undefined) return "\\u2014";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
  }
  function ago(s) { return s === null || s === undefined ? "\\u2014" : dur(s) + " ago"; }
  function before(s) {
    if (s === null || s === undefined) return "";
    return new Date(Date.parse(data.now) - s * 1000).toISOString().replace(".000Z", "Z");
  }
  function matches(r) {
    if (filter === "online" || filter === "offline") return r.state === filter;
    if (filter === "alerting") return r.open_alerts > 0;
    return true;
  }
  function compare(a, b) {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return sortDir === "desc" ? -c : c;
  }
  function td(tr, text, title, cls) {
    const cell = tr.insertCell();
    if (cls) cell.className = cls;
    if (title) {
      const t = document.createElement("time");
      t.textContent = text; t.title = title; t.dateTime = title;
      cell.append(t);
    } else {
      cell.textContent = text;
    }
    return cell;
  }
  function row(r) {
    const tr = document.createElement("tr");
    tr.dataset.state = r.state;
    tr.dataset.alerting = r.open_alerts > 0 ? "1" : "0";
    const link = document.createElement("a");
    link.href = "stores/" + encodeURIComponent(r.store_id) + "/" + encodeURIComponent(r.gateway_id);
    link.textContent = r.store_id;
    tr.insertCell().append(link);
    td(tr, r.gateway_id);
    const badge = document.createElement("span");
    badge.className = "badge " + r.state; badge.textContent = r.state;
    tr.insertCell().append(badge);
    td(tr, ago(r.state_age_s), r.state_since, "num");
    td(tr, ago(r.health_age_s), r.health_seen, "num");
    td(tr, r.outbox_pending === null ? "\\u2014" : String(r.outbox_pending), null, "num");
    td(tr, dur(r.oldest_pending_now_s),
       r.oldest_pending_now_s ? "oldest pending since " + before(r.oldest_pending_now_s) : null,
       "num");
    td(tr, String(r.open_alerts), r.alerts.join(", ") || null, "num");
    td(tr, r.version || "\\u2014");
    return tr;
  }
  function render() {
    const rows = data.gateways.filter(matches).sort(compare);
    body.replaceChildren(...rows.map(row));
    for (const [k, v] of Object.entries(data.summary)) {
      const el = document.getElementById("sum-" + k);
      if (el) el.textContent = v;
    }
    document.getElementById("shown").textContent =
      rows.length + " of " + data.gateways.length + " gateways shown";
    const upd = document.getElementById("updated");
    upd.textContent = "as of " + data.now; upd.dateTime = data.now;
    for (const th of table.tHead.rows[0].cells) {
      th.setAttribute("aria-sort", th.dataset.key === sortKey ?
        (sortDir === "desc" ? "descending" : "ascending") : "none");
    }
    for (const a of document.querySelectorAll("nav.filters a")) {
      a.classList.toggle("active", a.dataset.filter === filter);
    }
    const q = new URLSearchParams({sort: sortKey, dir: sortDir, state: filter});
    history.replaceState(null, "", "?" + q);
  }
  for (const th of table.tHead.rows[0].cells) {
    th.addEventListener("click", e => {
      e.preventDefault();
      if (sortKey === th.dataset.key) sortDir = sortDir === "asc" ? "desc" : "asc";
      else { sortKey = th.dataset.key; sortDir = "asc"; }
      render();
    });
  }
  for (const a of document.querySelectorAll("nav.filters a")) {
    a.addEventListener("click", e => { e.preventDefault(); filter = a.dataset.filter; render(); });
  }
  const status = document.getElementById("fetch-status");
  async function load() {
    try {
      const resp = await fetch("api/fleet", {headers: {Accept: "application/json"}});
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      data = await resp.json();
      status.textContent = "";
      render();
    } catch (err) {
      status.textContent = "update failed (" + err.message + "); showing the last data";
    } finally {
      setTimeout(load, Number(cfg.refresh) * 1000);
    }
  }
  setTimeout(load, Number(cfg.refresh) * 1000);
})();
"""

DETAIL_JS = """
(() => {
  const every = Number(document.body.dataset.refresh) * 1000;
  async function load() {
    try {
      const resp = await fetch(location.href, {headers: {Accept: "text/html"}});
      if (resp.ok) {
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.querySelector("main");
        if (fresh) document.querySelector("main").replaceWith(fresh);
      }
    } catch (err) {
      /* keep what is shown; the next round tries again */
    } finally {
      setTimeout(load, every);
    }
  }
  setTimeout(load, every);
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def ago(seconds: float | None) -> str:
    return "\u2014" if seconds is None else f"{duration(seconds)} ago"


def _time(text: str, at: str | None) -> str:
    if not at:
        return _e(text)
    return f'<time datetime="{_e(at)}" title="{_e(at)}">{_e(text)}</time>'


def _before(now: float, seconds: float | None) -> str | None:
    if not seconds:
        return None
    return iso(datetime.fromtimestamp(now, UTC) - timedelta(seconds=seconds))


def _page(title: str, body: str, nonce: str, script: str, refresh_s: float) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f'<style nonce="{nonce}">{CSS}</style></head>'
        f'<body data-refresh="{refresh_s:g}">{body}'
        f'<script nonce="{nonce}">{script}</script></body></html>\n'
    )


def gateway_path(store_id: str, gateway_id: str) -> str:
    return f"stores/{quote(store_id, safe='')}/{quote(gateway_id, safe='')}"


def _row_html(r: Mapping[str, Any], now: float) -> str:
    alerting = "1" if r["open_alerts"] else "0"
    oldest = r["oldest_pending_now_s"]
    oldest_at = _before(now, oldest)
    cells = [
        f'<td><a href="{_e(gateway_path(r["store_id"], r["gateway_id"]))}">'
        f"{_e(r['store_id'])}</a></td>",
        f"<td>{_e(r['gateway_id'])}</td>",
        f'<td><span class="badge {_e(r["state"])}">{_e(r["state"])}</span></td>',
        f'<td class="num">{_time(ago(r["state_age_s"]), r["state_since"])}</td>',
        f'<td class="num">{_time(ago(r["health_age_s"]), r["health_seen"])}</td>',
        f'<td class="num">{_e("—" if r["outbox_pending"] is None else r["outbox_pending"])}</td>',
        '<td class="num">'
        + (
            f'<time title="oldest pending since {_e(oldest_at)}">{_e(duration(oldest))}</time>'
            if oldest_at
            else _e(duration(oldest))
        )
        + "</td>",
        '<td class="num"'
        + (f' title="{_e(", ".join(r["alerts"]))}"' if r["alerts"] else "")
        + f">{_e(r['open_alerts'])}</td>",
        f"<td>{_e(r['version'] or '—')}</td>",
    ]
    return f'<tr data-state="{_e(r["state"])}" data-alerting="{alerting}">{"".join(cells)}</tr>'


def select_rows(
    rows: Sequence[Mapping[str, Any]], sort: str, direction: str, state: str
) -> list[Mapping[str, Any]]:
    """The rows the first render shows: filtered by state, sorted (missing values last)."""
    if state in ("online", "offline"):
        shown = [r for r in rows if r["state"] == state]
    elif state == "alerting":
        shown = [r for r in rows if r["open_alerts"]]
    else:
        shown = list(rows)
    present = [r for r in shown if r.get(sort) is not None]
    missing = [r for r in shown if r.get(sort) is None]
    present.sort(key=lambda r: r[sort], reverse=direction == "desc")
    return present + missing


def render_fleet(
    data: Mapping[str, Any],
    *,
    now: float,
    sort: str,
    direction: str,
    state: str,
    refresh_s: float,
    nonce: str,
    instance: str,
) -> str:
    """The fleet page; `data` is what `/api/fleet` returns."""
    rows = select_rows(data["gateways"], sort, direction, state)
    summary = data["summary"]
    tiles = "".join(
        f'<li>{label}<b id="sum-{key}">{_e(summary[key])}</b></li>'
        for key, label in (
            ("gateways", "Gateways"),
            ("online", "Online"),
            ("offline", "Offline"),
            ("unknown", "Unknown"),
            ("alerting", "Alerting"),
        )
    )
    heads = []
    for col in COLUMNS:
        new_dir = "desc" if col.key == sort and direction == "asc" else "asc"
        aria = ("descending" if direction == "desc" else "ascending") if col.key == sort else "none"
        href = "?" + urlencode({"sort": col.key, "dir": new_dir, "state": state})
        heads.append(
            f'<th data-key="{col.key}" aria-sort="{aria}"'
            + (' class="num"' if col.numeric else "")
            + f'><a href="{_e(href)}">{_e(col.label)}</a></th>'
        )
    filters = "".join(
        f'<a href="?{_e(urlencode({"sort": sort, "dir": direction, "state": f}))}"'
        f' data-filter="{f}" id="filter-{f}"'
        + (' class="active"' if f == state else "")
        + f">{f}</a>"
        for f in FILTERS
    )
    embedded = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    body = (
        f'<header><h1>Fleet</h1><p class="muted">HQ instance {_e(instance)} \u00b7 '
        f'<time id="updated" datetime="{_e(data["now"])}">as of {_e(data["now"])}</time> '
        f'\u00b7 refreshes every {refresh_s:g} s <span id="fetch-status"></span>'
        ' \u00b7 <a href="recon">Reconciliation</a></p></header>'
        f'<main><ul class="summary">{tiles}</ul>'
        f'<nav class="filters">Show: {filters}</nav>'
        f'<p class="muted" id="shown">{len(rows)} of {len(data["gateways"])} gateways shown</p>'
        f'<table id="fleet" data-sort="{_e(sort)}" data-dir="{_e(direction)}"'
        f' data-filter="{_e(state)}" data-refresh="{refresh_s:g}">'
        f"<thead><tr>{''.join(heads)}</tr></thead>"
        f"<tbody>{''.join(_row_html(r, now) for r in rows)}</tbody></table></main>"
        f'<script type="application/json" id="fleet-data">{embedded}</script>'
    )
    return _page("Fleet \u00b7 HQ", body, nonce, FLEET_JS, refresh_s)


# ---- a gateway's page -------------------------------------------------------------------


def _facts(items: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _value(name: str, value: Any, now: float) -> str:
    """One health field, shown for a person: times relative, sizes in MB, lengths readable."""
    if value is None:
        return '<span class="muted">\u2014</span>'
    if (name == "at" or name.endswith(("_at", "_since"))) and isinstance(value, str):
        try:
            then = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return _e(value)
        return _time(ago(now - then), value)
    if name.endswith("_s") and isinstance(value, int | float) and not isinstance(value, bool):
        return _e(duration(value))
    if name.endswith("_bytes") and isinstance(value, int):
        return _e(f"{value / 1_000_000:,.1f} MB")
    if isinstance(value, Mapping | list):
        return _e(json.dumps(value)) if value else '<span class="muted">none</span>'
    return _e(value)


def _alerts_table(alerts: Sequence[Mapping[str, Any]], now: float, table_id: str) -> str:
    if not alerts:
        return f'<p class="muted" id="{table_id}">none</p>'
    rows = []
    for a in alerts:
        at = a.get("at")
        when = _value("at", at, now) if at else "\u2014"
        state = str(a.get("state") or "raised")
        rows.append(
            f'<tr><td><span class="badge {_e(state)}">{_e(state)}</span></td>'
            f"<td>{_e(a.get('alert'))}</td><td>{_e(a.get('subject') or '')}</td>"
            f'<td><span class="badge {_e(a.get("severity"))}">{_e(a.get("severity"))}</span></td>'
            f"<td>{_e(a.get('detail'))}</td><td>{when}</td></tr>"
        )
    return (
        f'<table id="{table_id}"><thead><tr><th>State</th><th>Alert</th><th>Subject</th>'
        f"<th>Severity</th><th>Detail</th><th>At</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def history_chart(
    points: Sequence[Mapping[str, Any]], key: str, label: str, css: str, unit: str
) -> str:
    """One series of the health history as an inline SVG line chart (time on x)."""
    width, height, left, right, top, bottom = 720, 150, 56, 10, 18, 22
    values = [(float(p["age_s"] or 0.0), p[key]) for p in points if p.get(key) is not None]
    title = f"<title>{_e(label)}</title>"
    if len(values) < 2:
        return (
            f'<svg class="chart" role="img" data-series="{_e(key)}" viewBox="0 0 {width} 40">'
            f'{title}<text x="8" y="24">{_e(label)}: not enough health reports yet</text></svg>'
        )
    oldest_age = max(age for age, _ in values)
    newest_age = min(age for age, _ in values)
    span = (oldest_age - newest_age) or 1.0
    top_value = max(1.0, *(v for _, v in values))
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(age: float, value: float) -> str:
        x = left + plot_w * (oldest_age - age) / span
        y = top + plot_h * (1 - value / top_value)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(age, value) for age, value in values)
    last = values[-1][1]
    return (
        f'<svg class="chart" role="img" data-series="{_e(key)}" viewBox="0 0 {width} {height}"'
        f' xmlns="http://www.w3.org/2000/svg">{title}'
        f'<text x="{left}" y="12">{_e(label)} (now {_e(f"{last:g}")}{_e(unit)})</text>'
        f'<text x="4" y="{top + 10}">{_e(f"{top_value:g}")}{_e(unit)}</text>'
        f'<text x="4" y="{top + plot_h}">0</text>'
        f'<text x="{left}" y="{height - 6}">{_e(ago(oldest_age))}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{_e(ago(newest_age))}</text>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"'
        ' stroke="currentColor" stroke-opacity=".3"/>'
        f'<polyline class="{css}" points="{line}"/></svg>'
    )


def render_gateway(
    detail: Mapping[str, Any], *, now: float, refresh_s: float, nonce: str, history_max: int
) -> str:
    """A gateway's page; `detail` is what `/api/fleet/{store}/{gateway}` returns."""
    d = detail
    health: Mapping[str, Any] = d.get("health") or {}
    state = _e(d["state"])
    facts = _facts(
        [
            ("State", f'<span class="badge {state}" id="state">{state}</span>'),
            ("Since", _time(ago(d["state_age_s"]), d["state_since"])),
            ("Version", _e(d["version"] or "\u2014")),
            ("Session (bd_seq)", _e(d["bd_seq"])),
            ("Link", _e(d["link"] or "\u2014")),
            ("Last health", _time(ago(d["health_age_s"]), d["health_seen"])),
            ("Outbox depth", _e("\u2014" if d["outbox_pending"] is None else d["outbox_pending"])),
            ("Oldest pending", _e(duration(d["oldest_pending_now_s"]))),
            ("Last HQ ack", _value("last_hq_ack_at", d["last_hq_ack_at"], now)),
            ("Open alerts", _e(d["open_alerts"])),
        ]
    )
    fields = [
        (name, value)
        for name, value in _flatten(health)
        if name not in ("alerts_open", "last_hq_ack_at") and not name.startswith("devices.")
    ]
    health_html = (
        '<table id="health"><tbody>'
        + "".join(f"<tr><th>{_e(n)}</th><td>{_value(n, v, now)}</td></tr>" for n, v in fields)
        + "</tbody></table>"
        if fields
        else '<p class="muted" id="health">no health report yet</p>'
    )
    found = health.get("devices")
    devices: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    device_rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(dev.get('kind'))}</td><td>{_e(dev.get('lane'))}</td>"
        f"<td>{_e(dev.get('state'))}</td><td>{_e(dev.get('detail'))}</td>"
        f"<td>{_value('at', dev.get('at'), now)}</td></tr>"
        for name, dev in sorted(devices.items())
        if isinstance(dev, Mapping)
    )
    devices_html = (
        '<table id="devices"><thead><tr><th>Device</th><th>Kind</th><th>Lane</th><th>State</th>'
        f"<th>Detail</th><th>At</th></tr></thead><tbody>{device_rows}</tbody></table>"
        if device_rows
        else '<p class="muted">no devices reported</p>'
    )
    history = d["history"]
    title = f"{d['store_id']} / {d['gateway_id']}"
    body = (
        f'<header><p><a href="../../">\u2190 Fleet</a></p><h1>Store {_e(d["store_id"])}'
        f" \u00b7 gateway {_e(d['gateway_id'])}</h1></header>"
        f"<main>{facts}"
        f"<h2>Open alerts</h2>{_alerts_table(d['open_alert_list'], now, 'open-alerts')}"
        f"<h2>Recent alerts</h2>{_alerts_table(d['recent_alerts'], now, 'recent-alerts')}"
        f'<h2>Health history</h2><p class="muted">the last {len(history)} health reports'
        f" (up to {history_max} kept)</p>"
        f'<div id="history">'
        f"{history_chart(history, 'depth', 'Outbox depth', 'depth', '')}"
        f"{history_chart(history, 'oldest_s', 'Oldest pending age', 'oldest', ' s')}</div>"
        f"<h2>Health</h2>{health_html}<h2>Devices</h2>{devices_html}</main>"
    )
    return _page(f"{title} \u00b7 HQ", body, nonce, DETAIL_JS, refresh_s)


def render_missing(store_id: str, gateway_id: str, nonce: str) -> str:
    body = (
        '<header><p><a href="../../">\u2190 Fleet</a></p></header>'
        f"<main><h1>Not known</h1><p>HQ has heard nothing of gateway {_e(gateway_id)}"
        f" of store {_e(store_id)}.</p></main>"
    )
    return _page("Not known \u00b7 HQ", body, nonce, "", 0)


# ---- reconciliation ----------------------------------------------------------------------


NONE_ROW = '<tr><td colspan="3" class="muted">none</td></tr>'


def _risk(amounts: Mapping[str, str]) -> str:
    return ", ".join(f"{a} {c}" for c, a in sorted(amounts.items())) or "\u2014"


def _group_table(title: str, table_id: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{_e(g["count"])}</td>'
        f'<td class="num">{_e(_risk(g["amount_at_risk"]))}</td></tr>'
        for name, g in sorted(groups.items())
    )
    return (
        f'<section><h2>{_e(title)}</h2><table id="{table_id}"><thead><tr><th>{_e(title)}</th>'
        '<th class="num">Open</th><th class="num">Amount at risk</th></tr></thead>'
        f"<tbody>{rows or NONE_ROW}</tbody>"
        "</table></section>"
    )


def render_recon(view: Mapping[str, Any], *, nonce: str, instance: str) -> str:
    """The fleet-wide reconciliation page; `view` is what `/api/recon` returns. Server
    rendered, no script: reload to refresh."""
    detail = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(r[k])}</td>'
            if k in ("count", "amount_at_risk")
            else f"<td>{_e(r[k] if r[k] is not None else chr(0x2014))}</td>"
            for k in ("store_id", "kind", "class", "pattern", "currency", "count", "amount_at_risk")
        )
        + "</tr>"
        for r in view["rows"]
    )
    reports = "".join(
        f"<tr><td>{_e(r['store_id'])}</td><td>{_e(r['gateway_id'])}</td>"
        f"<td>{_e(r['report_id'])}</td><td>{_e(r['digest_id'] or 'checkpoint')}</td>"
        f"<td>{_e(r['period_from'])} \u2013 {_e(r['period_to'])}</td>"
        f'<td class="num">{_e(r["matched"])} / {_e(r["checked"])}</td>'
        f"<td>{_time(r['generated_at'], r['generated_at'])}</td></tr>"
        for r in view["reports"]
    )
    body = (
        '<header><p><a href="./">\u2190 Fleet</a></p><h1>Reconciliation</h1>'
        f'<p class="muted">HQ instance {_e(instance)} \u00b7 as of {_e(view["generated_at"])}'
        ' \u00b7 <a href="api/recon">JSON</a></p></header>'
        '<main><ul class="summary">'
        f'<li>Open mismatches<b id="open">{_e(view["open_mismatches"])}</b></li>'
        f'<li>Amount at risk<b id="at-risk">{_e(_risk(view["amount_at_risk"]))}</b></li></ul>'
        + _group_table("Store", "by-store", view["by_store"])
        + _group_table("Kind", "by-kind", view["by_kind"])
        + _group_table("Class", "by-class", view["by_class"])
        + _group_table("Pattern", "by-pattern", view["by_pattern"])
        + "<section><h2>Open mismatches by store, kind, class and pattern</h2>"
        '<table id="recon"><thead><tr><th>Store</th><th>Kind</th><th>Class</th><th>Pattern</th>'
        '<th>Currency</th><th class="num">Open</th><th class="num">Amount at risk</th></tr>'
        f"</thead><tbody>{detail}</tbody></table></section>"
        "<section><h2>Latest report of each gateway</h2>"
        '<table id="reports"><thead><tr><th>Store</th><th>Gateway</th><th>Report</th>'
        '<th>Digest</th><th>Period</th><th class="num">Matched / checked</th>'
        f"<th>Generated</th></tr></thead><tbody>{reports}</tbody></table></section></main>"
    )
    return _page("Reconciliation \u00b7 HQ", body, nonce, "", 0)
