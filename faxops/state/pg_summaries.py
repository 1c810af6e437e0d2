"""A campaign's summaries read from PostgreSQL: what ``plan`` needs of a million records, without them.

A plan needs, per recorded number, its summary; a settled record's (delivered, queued, sending) is only
its status and attempt count. Fetching every record (~450 bytes each) and summarising it in Python made
a warm plan from PostgreSQL over twice the lockfile's, which reads an index. So the settled records'
status and attempt count come as ``COPY`` text, one short line per number, split here by a few C-level
passes; only the other records (few: failed, pending, unknown) and the ``detail`` numbers are fetched
whole and parsed. Every write stores the status and the count (``records.attempts_of_raw``, the count
``summarise_raw`` takes) in columns beside the record; counting on the server at read time instead made
the plan slower than fetching the records.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import orjson
from psycopg import sql

from faxops.domain import Status
from faxops.state.records import Summary, shared_summary, summarise

if TYPE_CHECKING:
    from faxops.state.postgres import Conn, PgLocation

_SETTLED = [str(s) for s in (Status.DELIVERED, Status.QUEUED, Status.SENDING)]
# COPY's text format escapes a backslash, tab, line feed or carriage return inside a field. A number never
# holds one, but a lockfile edited by hand and migrated could: such a row takes the general way instead,
# so that the split below never has to undo an escape.
_PLAIN = r"^[^\\\t\n\r]*$"


class _Shared(dict[str, Summary]):
    """``"status:count"`` -> the shared summary of a settled record (built on first sight of a pair)."""

    def __missing__(self, key: str) -> Summary:
        status, _, count = key.partition(":")
        summary = self[key] = shared_summary(Status(status), int(count))
        return summary


def read_summaries(conn: Conn, loc: PgLocation, campaign_id: int, detail: Collection[str]) -> dict[str, Summary]:
    """Every recorded number's summary; ``detail`` numbers parsed from their whole record."""
    table = loc.table("records")
    wanted = sql.Literal(sorted(detail))
    settled = sql.Literal(_SETTLED)
    # Both queries run in the caller's repeatable-read snapshot and split the rows between them exactly:
    # a row is either plain, settled and not wanted in detail (copied as a line), or fetched whole.
    fast = sql.SQL(
        "status = ANY({settled}::text[]) AND attempts IS NOT NULL AND NOT number = ANY({wanted}::text[]) "
        "AND number ~ {plain}"
    ).format(settled=settled, wanted=wanted, plain=sql.Literal(_PLAIN))
    summaries: dict[str, Summary] = {}
    shared = _Shared()
    copy = sql.SQL(
        "COPY (SELECT number, status || ':' || attempts FROM {table} WHERE campaign_id = {cid} AND {fast}) TO STDOUT"
    ).format(table=table, cid=campaign_id, fast=fast)
    rest = b""
    with conn.cursor() as cur, cur.copy(copy) as out:
        for block in out:
            data = rest + bytes(block)
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
            if data:
                _take(data, summaries, shared)
    if rest:
        _take(rest + b"\n", summaries, shared)
    others = sql.SQL("SELECT number, record FROM {table} WHERE campaign_id = %s AND NOT ({fast})").format(
        table=table, fast=fast
    )
    with conn.cursor(binary=True) as cur:
        for number, raw in cur.execute(others, (campaign_id,)):
            summaries[number] = summarise(orjson.loads(bytes(raw)))
    return summaries


def _take(data: bytes, summaries: dict[str, Summary], shared: _Shared) -> None:
    # "number\tstatus:count\n" lines: one split gives numbers and codes alternately.
    fields = data[:-1].decode().replace("\n", "\t").split("\t")
    summaries.update(zip(fields[0::2], map(shared.__getitem__, fields[1::2]), strict=True))
