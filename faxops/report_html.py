"""The HTML report: one self-contained page for an operations manager (no external file, no network).

It answers, top to bottom: what campaign and whose, how far it is, what it cost, what was sent (the
documents), how deliveries went over time, why faxes failed, and each recipient. Times are in the
campaign's time zone (``schedule.timezone``, else UTC), to the second. A failure that faxops will retry
says so ("will retry at …") instead of showing as a final red "failed".

The recipient table pages and filters in the browser: the rows travel once as compact JSON (each
distinct string stored once), and the first page is also rendered as plain HTML for readers without
scripts (e-mail clients). At 20,000 recipients the page is a fraction of the size of a full HTML table.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from faxops import __version__
from faxops.clock import parse_iso
from faxops.report_chart import chart

if TYPE_CHECKING:
    from faxops.report_rows import ReportRow
    from faxops.reports import Report

ROW_LIMIT = 100_000  # rows carried in the page; the CSV and JSON reports hold every one
PAGE = 100
_COLOURS = {
    "delivered": "#2e7d32",
    "failed": "#c62828",
    "will retry": "#b26a00",
    "queued": "#1565c0",
    "sending": "#1565c0",
    "pending": "#6a1b9a",
    "canceled": "#ef6c00",
    "expired": "#ef6c00",
    "deferred": "#5c6bc0",
    "not_sent": "#757575",
    "skipped": "#757575",
}
_COLUMNS = ("number", "name", "status", "failure", "provider status", "reason", "attempts", "job IDs", "updated")
esc = html.escape


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (KeyError, ValueError):
        return UTC


def local_time(value: object, zone: tzinfo) -> str:
    """A recorded timestamp as a person reads it: in the campaign's zone, to the second, named."""
    moment = parse_iso(value)
    if moment is None:
        return str(value or "")
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".strip()


# --- the chart ------------------------------------------------------------------------------------------


def _display(row: Mapping[str, Any], retry_at: dict[str, str], zone: tzinfo) -> tuple[str, str]:
    """(the status as shown, the key it is filtered and coloured by)."""
    status = str(row["status"])
    if status == "failed" and str(row["number"]) in retry_at:
        due = retry_at[str(row["number"])]
        return (f"will retry at {local_time(due, zone)}" if due else "will retry on the next run"), "will retry"
    return status.replace("_", " "), status


def render(report: Report, *, mask: bool = False) -> str:
    """The whole page."""
    zone = _zone(report.context.timezone)
    rows = report.rows[:ROW_LIMIT]
    data, keys, first_page = _pack(rows, report.context.retry_at, zone, mask=mask)
    options = "".join(
        f'<option value="{esc(k)}">{esc(k.replace("_", " "))} ({n:,})</option>' for k, n in keys.most_common()
    )
    cut = (
        f'<p class="muted">The first {ROW_LIMIT:,} of {len(report.rows):,} recipients; the CSV and JSON reports '
        "hold all.</p>"
        if len(report.rows) > ROW_LIMIT
        else ""
    )
    return _PAGE.format(
        campaign=esc(report.campaign),
        about=_about(report, zone),
        cards=_cards(report, keys),
        figures=_figures(report),
        documents=_documents(report),
        chart=chart(report.delivered_per_hour, zone),
        failures=_failures(report),
        cut=cut,
        total=f"{len(rows):,}",
        options=options,
        head="".join(f"<th>{esc(c)}</th>" for c in _COLUMNS),
        first_page="".join(first_page),
        page=PAGE,
        data=data,
        style=_STYLE,
        script=_SCRIPT,
    )


def _pack(
    rows: Sequence[ReportRow], retry_at: dict[str, str], zone: tzinfo, *, mask: bool
) -> tuple[str, Counter[str], list[str]]:
    """The rows as the page's script reads them, the count per status key, and the first page as HTML.

    Every cell is an index into one list of distinct strings: a campaign repeats the same statuses,
    reasons and times thousands of times, and the page would otherwise carry each of them every time.
    """
    from faxops.reports import masked

    strings: dict[str, int] = {}

    def ref(value: object) -> int:
        return strings.setdefault("" if value is None else str(value), len(strings))

    keys: Counter[str] = Counter()
    packed: list[list[int]] = []
    first_page: list[str] = []
    for row in rows:
        shown = masked(row) if mask else row
        status, key = _display(row, retry_at, zone)
        keys[key] += 1
        cells = [
            str(shown["number"]),
            shown["name"] or "",
            status,
            shown["failure"] or "",
            shown["provider_status"] or "",
            shown["reason"] or "",
            str(shown["attempts"]),
            " ".join(shown["job_ids"]),
            local_time(shown["updated"], zone) if shown["updated"] else "",
        ]
        packed.append([*map(ref, cells), ref(key)])
        if len(first_page) < PAGE:
            first_page.append(_row_html(cells, key))
    # "<" escaped so that a recipient's name holding "</script>" cannot end the script element.
    data = orjson.dumps({"s": list(strings), "r": packed}).decode().replace("<", "\\u003c")
    return data, keys, first_page


def _row_html(cells: list[str], key: str) -> str:
    out = []
    for i, text in enumerate(cells):
        cls = {0: "id", 6: "r", 7: "id", 8: "id"}.get(i, "")
        if i == 2:
            cls = "st st-" + key.replace(" ", "_")
        out.append(f'<td class="{cls}">{esc(text)}</td>' if cls else f"<td>{esc(text)}</td>")
    return "<tr>" + "".join(out) + "</tr>"


def _about(report: Report, zone: tzinfo) -> str:
    ctx = report.context
    parts = []
    if ctx.description:
        parts.append(f'<p class="lead">{esc(ctx.description)}</p>')
    state = "complete" if report.final else "in progress"
    meta = [f"Owner: {esc(ctx.owner)}"] if ctx.owner else []
    meta += [
        f"Provider: {esc(report.provider)}",
        f"Campaign {state}",
        f"Report of {esc(local_time(report.generated_at, zone))} (faxops {__version__})",
    ]
    parts.append(f'<p class="muted">{" · ".join(meta)}</p>')
    return "".join(parts)


def _cards(report: Report, keys: Counter[str]) -> str:
    total = max(1, len(report.rows))
    cards = [f'<div class="card"><div class="n">{len(report.rows):,}</div><div>recipients</div></div>']
    for key, n in keys.most_common():
        colour = _COLOURS.get(key, "#333")
        cards.append(
            f'<div class="card"><div class="n" style="color:{colour}">{n:,}</div>'
            f'<div>{esc(key.replace("_", " "))}</div><div class="muted">{n * 100 / total:.1f}%</div></div>'
        )
    return "".join(cards)


def _figures(report: Report) -> str:
    ctx = report.context
    rows = [
        ("Pages delivered", f"{report.pages:,}" + (f" ({ctx.pages_per_fax} per fax)" if ctx.pages_per_fax else "")),
        ("Attempts", f"{report.attempts:,}"),
    ]
    if ctx.cost_reported is not None:
        rows.append(("Cost reported by the provider", _money(ctx.cost_reported, None)))
    if ctx.currency:
        rows.append(("Cost so far (estimated from budget.per_page)", _money(ctx.cost_spent, ctx.currency)))
        if ctx.cost_to_come:
            rows.append(("Still to send (estimated)", _money(ctx.cost_to_come, ctx.currency)))
    elif ctx.cost_reported is None:
        rows.append(("Cost", "not reported by the provider; set budget.per_page for an estimate"))
    return "".join(f'<tr><th>{esc(k)}</th><td class="r">{esc(v)}</td></tr>' for k, v in rows)


def _documents(report: Report) -> str:
    docs = report.context.documents
    if not docs:
        return '<p class="muted">No documents recorded.</p>'
    body = "".join(
        f'<tr><td>{esc(name)}</td><td>{esc(fmt)}</td><td class="r">{pages if pages is not None else "?"}</td></tr>'
        for name, fmt, pages in docs
    )
    return f'<table class="narrow"><tr><th>document</th><th>format</th><th class="r">pages</th></tr>{body}</table>'


def _failures(report: Report) -> str:
    if not report.by_failure:
        return '<p class="muted">No failures.</p>'
    peak = max(report.by_failure.values())
    body = "".join(
        f'<tr><td>{esc(f.replace("_", " "))}</td><td class="r">{n:,}</td><td><div class="bar" '
        f'style="width:{n * 100 / peak:.0f}%"></div></td></tr>'
        for f, n in report.by_failure.most_common()
    )
    return f'<table class="narrow"><tr><th>class</th><th class="r">recipients</th><th></th></tr>{body}</table>'


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem} .lead{font-size:1.05rem}
.muted{color:#777} .cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:110px}
.card .n{font-size:1.6rem;font-weight:600}
table{border-collapse:collapse;width:100%} table.narrow{width:auto;min-width:420px}
td,th{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600} .r{text-align:right} .bar{background:#ef9a9a;height:12px;border-radius:3px;
min-width:2px} td.id{white-space:nowrap;font-family:monospace;font-size:12px}
.st-delivered{color:#2e7d32} .st-failed{color:#c62828;font-weight:600} .st-will_retry{color:#b26a00}
.st-queued,.st-sending{color:#1565c0} .st-pending{color:#6a1b9a} .st-deferred{color:#5c6bc0}
.controls{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.6rem 0}
.controls input{min-width:18rem;padding:.25rem .4rem} svg text{fill:#444}
"""

# Rows are drawn with textContent only: no recipient's data is ever parsed as HTML.
_SCRIPT = """
(function(){
var d=JSON.parse(document.getElementById("rows").textContent),S=d.s,R=d.r,P=%PAGE%,page=0,shown=R;
var tb=document.querySelector("#recipients tbody"),st=document.getElementById("f-status"),
tx=document.getElementById("f-text"),info=document.getElementById("f-info"),
prev=document.getElementById("f-prev"),next=document.getElementById("f-next"),
cls=["id","","","","","","r","id","id"];
function draw(){
  tb.textContent="";
  shown.slice(page*P,page*P+P).forEach(function(r){
    var tr=document.createElement("tr");
    for(var i=0;i<9;i++){var td=document.createElement("td");td.textContent=S[r[i]];
      td.className=i===2?"st st-"+S[r[9]].replace(/ /g,"_"):cls[i];tr.appendChild(td);}
    tb.appendChild(tr);});
  var pages=Math.max(1,Math.ceil(shown.length/P));
  info.textContent=shown.length.toLocaleString()+" recipient(s) · page "+(page+1)+" of "+pages;
  prev.disabled=page===0;next.disabled=page>=pages-1;}
function filter(){
  var s=st.value,t=tx.value.trim().toLowerCase();
  shown=R.filter(function(r){
    if(s&&S[r[9]]!==s)return false;
    if(!t)return true;
    for(var i=0;i<9;i++){if(S[r[i]].toLowerCase().indexOf(t)>=0)return true;}
    return false;});
  page=0;draw();}
st.addEventListener("change",filter);tx.addEventListener("input",filter);
prev.addEventListener("click",function(){if(page>0){page--;draw();}});
next.addEventListener("click",function(){page++;draw();});
document.getElementById("controls").hidden=false;draw();
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fax campaign {campaign}: report</title>
<style>{style}</style></head><body>
<h1>Fax campaign <code>{campaign}</code></h1>
{about}
<div class="cards">{cards}</div>
<table class="narrow">{figures}</table>
<h2>Documents sent</h2>{documents}
<h2>Deliveries over time</h2>{chart}
<h2>Failures by class</h2>{failures}
<h2>Recipients</h2>{cut}
<div class="controls" id="controls" hidden>
<label>Show <select id="f-status"><option value="">all ({total})</option>{options}</select></label>
<input id="f-text" type="search" placeholder="Filter by number, name, job ID, reason…" aria-label="filter">
<button id="f-prev" type="button">‹ previous</button><span id="f-info"></span>
<button id="f-next" type="button">next ›</button>
</div>
<noscript><p class="muted">The first {page} recipients are shown; the CSV report holds all.</p></noscript>
<table id="recipients"><thead><tr>{head}</tr></thead><tbody>{first_page}</tbody></table>
<script type="application/json" id="rows">{data}</script>
<script>{script}</script>
</body></html>
"""
_SCRIPT = _SCRIPT.replace("%PAGE%", str(PAGE))
