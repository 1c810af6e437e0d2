"""The postgres state backend: sandbox apply throughput, state bytes per send, warm plan against local.

Starts a durable throwaway server (fsync on, as in production) in bench/work/pg, applies a sandbox
campaign of SIZE recipients through the CLI with ``FAXOPS_STATE_URL`` set, plans it again (warm) from
PostgreSQL (once, then three times: the median is compared), moves the state to a lockfile
(``faxops state migrate --to local``) and plans it again from there the same way. Usage:
``python bench/postgres.py [SIZE]`` (default 100000, or the first of $FAXOPS_BENCH_SIZES).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, WORK, generate, measure

from faxops.testing import pgserver


def main() -> None:
    sizes = os.environ.get("FAXOPS_BENCH_SIZES", "").split(",")
    size = int(sys.argv[1]) if len(sys.argv) > 1 else int(sizes[0] or 100_000)
    root = WORK / "pg"
    shutil.rmtree(root, ignore_errors=True)
    server = pgserver.init(root, durable=True)
    try:
        results = bench(server, size)
    finally:
        server.stop("fast")
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))
    (Path(__file__).resolve().parent / "results-postgres.json").write_text(json.dumps(results, indent=2) + "\n")


def bench(server: pgserver.PgServer, size: int) -> dict[str, Any]:
    url = server.create_database("bench")
    directory = WORK / f"pg-{size}"
    shutil.rmtree(directory, ignore_errors=True)
    manifest = generate(directory, size).name
    faxops = [PY, "-m", "faxops"]
    quiet = {"keep_stdout": False}
    os.environ["FAXOPS_STATE_URL"] = url
    results: dict[str, Any] = {"size": size}
    apply = measure([*faxops, "apply", manifest, "--auto-approve", "--refresh=false"], directory, **quiet)
    apply["sends_per_second"] = round(size / apply["seconds"], 1)  # start-up and plan included
    results["apply_postgres"] = apply
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('faxops.journal'), pg_total_relation_size('faxops.records')"
        ).fetchone()
    assert row is not None
    results["journal_bytes_per_send"] = round(int(row[0]) / size, 1)
    results["records_bytes_per_recipient"] = round(int(row[1]) / size, 1)
    plan = [*faxops, "plan", manifest, "--detailed-exitcode"]
    # Each backend's warm plan is measured twice and the second compared: the first plan after a migrate
    # reads the whole lockfile and writes its summaries index (which a fold writes on its own), and the
    # first reader of freshly written rows sets their hint bits on the server.
    results["plan_first_postgres"] = measure(plan, directory, **quiet)
    results["plan_warm_postgres"] = _median([measure(plan, directory, **quiet) for _ in range(3)])
    measure([*faxops, "state", "migrate", manifest, "--to", "local"], directory, **quiet)
    del os.environ["FAXOPS_STATE_URL"]
    results["plan_first_local"] = measure(plan, directory, **quiet)
    results["plan_warm_local"] = _median([measure(plan, directory, **quiet) for _ in range(3)])
    results["warm_plan_ratio"] = round(
        results["plan_warm_postgres"]["seconds"] / results["plan_warm_local"]["seconds"], 2
    )
    shutil.rmtree(directory, ignore_errors=True)
    return results


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (each warm plan is run three times: one run is at the mercy of the machine)."""
    return sorted(runs, key=lambda r: float(r["seconds"]))[len(runs) // 2]


if __name__ == "__main__":
    main()
