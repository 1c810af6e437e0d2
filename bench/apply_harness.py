"""Apply a campaign on the sandbox through the library and report throughput and state bytes per send.

The CLI's `apply` does the same steps; this harness exists to read the journal's byte counter, which
the CLI does not print.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from faxops.apply import ApplyOptions, execute
from faxops.campaign import cpu_workers, open_campaign
from faxops.state import LocalWriter


def main() -> None:
    campaign = open_campaign(Path(sys.argv[1]))
    writer = LocalWriter(campaign.paths, campaign.name, operation="bench")
    plan = campaign.plan(writer.state(), cpu_workers())
    started = time.perf_counter()
    report = execute(campaign, plan, writer, ApplyOptions(pace=campaign.pace()))
    sent_seconds = time.perf_counter() - started
    del plan  # as the CLI does: the fold runs without the plan in memory
    journal = writer.journal
    fold_started = time.perf_counter()
    writer.close(campaign.applied_with())
    fold_seconds = time.perf_counter() - fold_started
    sent = report.outcomes["accepted"]
    print(
        json.dumps(
            {
                "sent": sent,
                "apply_seconds": round(sent_seconds, 2),
                "sent_per_second": round(sent / sent_seconds, 1),
                "journal_bytes": journal.bytes_written,
                "journal_bytes_per_send": round(journal.bytes_written / max(1, sent), 1),
                "journal_events": journal.events_written,
                "fold_seconds": round(fold_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
