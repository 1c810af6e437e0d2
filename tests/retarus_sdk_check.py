"""Checks run by Retarus' official Python client (``retarus-fax``) in a virtualenv of its own.

``retarus-fax`` needs pydantic 1, which cannot share faxops' environment, so ``tests/test_retarus_sdk.py``
runs this file with that virtualenv's interpreter. It reads a JSON job from stdin and writes a JSON
result to stdout:

* ``requests``: bodies faxops sent, each validated with the client's ``Job`` model;
* ``reports``: reports the simulator answered, each parsed with the client's ``FaxReport`` model;
* ``sim``: a running simulator that the client itself sends to, lists, reads and deletes at.

Where the client contradicts Retarus' published reference, the reference wins and ``DEVIATIONS`` says
how a document is adapted before the client judges it; everything else must pass as it is.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

#: The client's model against the reference (and the Java SDK's example report): field names it
#: misspells in ``Recipient``/``Reference``, and fields whose type or optionality it gets wrong.
DEVIATIONS = {
    "sentTs": "sendTs",
    "durationInSecs": "durationInSeconds",
    "sentToNumber": "sendToNumber",
    "remoteCsid": "remoteCsId",
    "customerDefinedId": "costumerDefinedId",
}


def _as_the_client_spells_it(report: dict[str, Any]) -> dict[str, Any]:
    adapted = dict(report)
    recipients = []
    for item in report.get("recipientStatus") or []:
        renamed = {DEVIATIONS.get(k, k): v for k, v in item.items()}
        renamed["properties"] = None  # a list of {key, value} in the reference; a string in the client
        recipients.append(renamed)
    adapted["recipientStatus"] = recipients
    adapted["reference"] = {DEVIATIONS.get(k, k): v for k, v in (report.get("reference") or {}).items()}
    return adapted


def _job_as_the_client_takes_it(body: dict[str, Any]) -> dict[str, Any]:
    adapted = dict(body)
    rendering = body.get("renderingOptions")
    if isinstance(rendering, dict) and "coverpageTemplate" not in rendering:
        # Optional in the reference ("The name of the cover page's template"); required in the client.
        adapted["renderingOptions"] = {**rendering, "coverpageTemplate": ""}
    return adapted


def check_requests(bodies: list[dict[str, Any]]) -> list[str]:
    from retarus.fax.model import Job

    errors = []
    for body in bodies:
        try:
            job = Job.parse_obj(_job_as_the_client_takes_it(body))
        except Exception as exc:  # the client's ValidationError, reported as data
            errors.append(f"request {str(body)[:120]}: {exc}")
            continue
        # (The client's SendRecipient overrides __dict__, so its fields cannot be read back; count them.)
        if len(job.recipients) != len(body["recipients"]) or len(job.documents) != len(body["documents"]):
            errors.append("recipients or documents were not read as sent")
    return errors


def check_reports(reports: list[dict[str, Any]]) -> list[str]:
    from retarus.fax.model import FaxReport

    errors = []
    for report in reports:
        try:
            parsed = FaxReport.parse_obj(_as_the_client_spells_it(report))
        except Exception as exc:
            errors.append(f"report {report.get('jobId')}: {exc}")
            continue
        if parsed.job_id != report["jobId"] or not parsed.recipient_status:
            errors.append(f"report {report.get('jobId')} lost its job id or recipients")
    return errors


def drive_the_client(sim: dict[str, Any]) -> dict[str, Any]:
    """Send, list, read and delete through the official client, pointed at the simulator."""
    from retarus.commons.config import Configuration
    from retarus.commons.region import Region, RegionUri
    from retarus.fax.model import Document, Job, SendRecipient
    from retarus.fax.sync import SyncFaxClient

    Configuration.set_auth(sim["user"], sim["password"])
    Configuration.customer_number = sim["customer"]
    Configuration.set_region(Region.Europe)
    client = SyncFaxClient([RegionUri(region=Region.Europe, ha_uri=sim["url"], urls=sim["dcs"])])
    job = Job(
        recipients=[SendRecipient(number="+4989123456")],
        documents=[Document(name="hello.txt", data="SGVsbG8=", charset="UTF-8")],
    )
    sent = client.send_fax_job(job)
    request = urllib.request.Request(
        f"{sim['url']}/_sim/advance", data=json.dumps({"seconds": 3600}).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()
    listed = client.get_fax_reports()
    one = client.get_fax_report(sent["jobId"])
    deleted = client.delete_fax_report(sent["jobId"])
    after = client.delete_all_fax_reports()
    return {"sent": sent, "listed": listed, "report": one, "deleted": deleted, "deleted_all": after}


def main() -> int:
    job = json.load(sys.stdin)
    result: dict[str, Any] = {
        "request_errors": check_requests(job.get("requests", [])),
        "report_errors": check_reports(job.get("reports", [])),
    }
    if job.get("sim"):
        result["client"] = drive_the_client(job["sim"])
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
