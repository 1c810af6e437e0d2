"""A campaign's summaries read from PostgreSQL: what ``plan`` needs of a million records, without them.

A plan needs, per recorded number, its summary; a settled record's (delivered, queued, sending) is only
its status and attempt count. Fetching every record (~450 bytes each) and summarising it in Python made
a warm plan from PostgreSQL over twice the lockfile's, which reads an index. So the settled records'
numbers come as one text per (status, attempt count), aggregated by the server and split here by a
few C-level passes; only the other records (few: failed, pending, unknown) and the
``detail`` numbers are fetched whole and parsed. Every write stores the status and the count
(``records.attempts_of_raw``, the count ``summarise_raw`` takes) in columns beside the record; counting
on the server at read time instead made the plan slower than fetching the records.
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
# The numbers are split at line feeds. A number never holds one, but a lockfile edited by hand and migrated
# could: such a row (and, to be safe, one with a backslash, tab or carriage return) takes the general way.
_PLAIN = r"^[^\\\t\n\r]*$"


def read_summaries(conn: Conn, loc: PgLocation, campaign_id: int, detail: Collection[str]) -> dict[str, Summary]:
    """Every recorded number's summary; ``detail`` numbers parsed from their whole record."""
    table = loc.table("records")
    wanted = sql.Literal(sorted(detail))
    settled = sql.Literal(_SETTLED)
    # Both queries run in the caller's repeatable-read snapshot and split the rows between them exactly:
    # a row is either plain, settled and not wanted in detail (a line of its group's text), or fetched whole.
    fast = sql.SQL(
        "status = ANY({settled}::text[]) AND attempts IS NOT NULL AND NOT number = ANY({wanted}::text[]) "
        "AND number ~ {plain}"
    ).format(settled=settled, wanted=wanted, plain=sql.Literal(_PLAIN))
    summaries: dict[str, Summary] = {}
    # The numbers of each (status, count) pair as one text value, aggregated by the server: fetched as a
    # million rows (or COPY lines, which libpq hands over one row at a time) they cost more in the client
    # than the rest of the plan; this way the client splits a few texts and shares one summary per pair.
    groups = sql.SQL(
        "SELECT status, attempts, string_agg(number, E'\\n') FROM {table} WHERE campaign_id = %s AND {fast} "
        "GROUP BY status, attempts"
    ).format(table=table, fast=fast)
    for status, attempts, numbers in conn.execute(groups, (campaign_id,)).fetchall():
        summary = shared_summary(Status(status), int(attempts))
        summaries.update(dict.fromkeys(str(numbers).split("\n"), summary))
    others = sql.SQL("SELECT number, record FROM {table} WHERE campaign_id = %s AND NOT ({fast})").format(
        table=table, fast=fast
    )
    with conn.cursor(binary=True) as cur:
        for number, raw in cur.execute(others, (campaign_id,)):
            summaries[number] = summarise(orjson.loads(bytes(raw)))
    return summaries
