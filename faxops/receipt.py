"""Receipts: what one ``faxops apply`` did, small and safe enough to commit or attach to a pull request.

A receipt names the campaign, the state's lineage and serial before and after, the digest of the plan
applied, counts by outcome and by status, pages, cost, who ran it, where and when, and the CI run that
did (GitHub Actions, GitLab CI). It never holds a full fax number (masked), a job ID (hashed with the
lineage: whoever holds the lockfile can recompute it) or anything from the manifest's secrets.
"""

from __future__ import annotations

import bisect
import getpass
import hashlib
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from faxops import __version__
from faxops.apply import ApplyReport, JobResult
from faxops.campaign import Campaign
from faxops.clock import now_iso
from faxops.manifest import ReceiptReport
from faxops.redact import hash_id, mask_number
from faxops.state.files import atomic_write
from faxops.state.lockfile import Header

RECEIPT_KIND = "faxops-receipt"
RECEIPT_FORMAT_VERSION = 1
JOBS_KEPT = 100  # the jobs a receipt lists (the first by number); the counts cover all of them


def plan_digest(data: bytes | Iterable[bytes]) -> str:
    """``sha256:<hex>`` of a plan document, whole or in pieces: for a saved plan, ``sha256sum PLANFILE``
    gives the same hex."""
    digest = hashlib.sha256()
    for piece in [data] if isinstance(data, bytes) else data:
        digest.update(piece)
    return "sha256:" + digest.hexdigest()


@dataclass
class ReceiptLog:
    """Collects what a receipt needs while apply runs; ``observe`` is safe to call from sender threads."""

    plan_digest: str | None = None
    plan_source: str = "manifest"
    pages: int = 0
    cost: float = 0.0
    currency: str | None = None
    _jobs: list[tuple[str, str, str]] = field(default_factory=list)  # (number, job id, outcome), sorted
    _count: Counter[str] = field(default_factory=Counter)

    def planned(self, pages: int, cost: float, currency: str | None) -> None:
        """A round of sends is about to start (``apply --wait`` runs several)."""
        self.pages += pages
        self.cost += cost
        self.currency = currency

    def observe(self, result: JobResult) -> None:
        """One provider job's result (as ``ApplyOptions.on_result`` receives it)."""
        for number in result.numbers:
            self._count[result.outcome] += 1
            item = (number, result.job_id or "", result.outcome)
            # Keep only the first JOBS_KEPT by number: a receipt of a million sends stays a few kilobytes
            # and lists the same jobs whatever order the threads finished in.
            if len(self._jobs) < JOBS_KEPT or item < self._jobs[-1]:
                bisect.insort(self._jobs, item)
                del self._jobs[JOBS_KEPT:]

    def jobs(self, salt: str) -> list[dict[str, str]]:
        return [
            # Numbers masked and job ids hashed (salted per lineage): a receipt is committed or attached to a pull
            # request, where anyone with read access sees it, yet it must still be matchable against the state.
            # Numbers masked and job ids hashed (salted per lineage): a receipt is committed or attached to a pull
            # request, where anyone with read access sees it, yet it must still be matchable against the state.
            {"number": mask_number(number), "job": hash_id(job, salt=salt) if job else "", "outcome": outcome}
            for number, job, outcome in self._jobs
        ]


def ci_run(env: Mapping[str, str]) -> dict[str, str] | None:
    """The CI run, from the variables GitHub Actions and GitLab CI set; None outside CI."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repo = env.get("GITHUB_REPOSITORY", "")
        url = f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}"
        if env.get("GITHUB_RUN_ATTEMPT"):
            url += f"/attempts/{env['GITHUB_RUN_ATTEMPT']}"
        return _drop_empty(
            {"system": "github-actions", "url": url, "repository": repo, "commit": env.get("GITHUB_SHA", "")}
        )
    if env.get("GITLAB_CI") == "true":
        url = env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL") or ""
        return _drop_empty(
            {
                "system": "gitlab-ci",
                "url": url,
                "repository": env.get("CI_PROJECT_PATH", ""),
                "commit": env.get("CI_COMMIT_SHA", ""),
            }
        )
    if env.get("CI"):
        return _drop_empty({"system": "ci", "url": env.get("BUILD_URL", "")})
    return None


def _who(env: Mapping[str, str]) -> str:
    # In CI the process user is a runner account; the person who triggered the run is the one to name.
    # In CI the process user is a runner account; the person who triggered the run is the one to name.
    for key in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"):
        if env.get(key):
            return env[key]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return user


def build(
    log: ReceiptLog,
    report: ApplyReport,
    *,
    campaign: str,
    lineage: str | None,
    serial_before: int,
    serial_after: int,
    statuses: Mapping[str, int],
    when: str,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """The receipt document (plain JSON types, keys in a fixed order)."""
    # PLACEHOLDER
    # Rounded to cents: summed float prices carry binary noise (0.30000000000000004) that would make two receipts of
    # the same run differ; no cost at all without a price list, rather than a misleading 0.
    cost = {"currency": log.currency, "estimated": round(log.cost, 2)} if log.currency else None
    return {
        "kind": RECEIPT_KIND,
        "format_version": RECEIPT_FORMAT_VERSION,
        "campaign": campaign,
        "lineage": lineage,
        "serial": {"before": serial_before, "after": serial_after},
        "plan": {"digest": log.plan_digest, "source": log.plan_source},
        "submitted": report.submitted,
        "outcomes": dict(sorted(report.outcomes.items())),
        "stopped": report.stopped,
        "status": dict(sorted(statuses.items())),
        "pages": log.pages,
        "cost": cost,
        "who": _who(env),
        "where": socket.gethostname(),
        "when": when,
        "ci": ci_run(env),
        "faxops": __version__,
        "jobs": log.jobs(lineage or campaign),
    }


def dumps(receipt: Mapping[str, Any]) -> bytes:
    """The receipt as committed: indented, one trailing newline, so that Git diffs stay readable."""
    return orjson.dumps(receipt, option=orjson.OPT_INDENT_2) + b"\n"


def target_path(template: str, base: Path, *, campaign: str, serial: int) -> Path:
    """A ``receipt:`` target's path with ``{campaign}`` and ``{serial}`` filled in, relative to the manifest."""
    return base / template.replace("{campaign}", campaign).replace("{serial}", str(serial))


def write_receipts(
    campaign: Campaign,
    path: Path | None,
    log: ReceiptLog,
    report: ApplyReport,
    before: Header | None,
    env: Mapping[str, str],
) -> list[Path]:
    """Write the receipt to ``path`` and to every ``receipt:`` target; the paths written (none if none asked)."""
    targets = [t for t in campaign.loaded.model.reporting if isinstance(t, ReceiptReport)]
    if path is None and not targets:
        return []
    after = campaign.store.header()
    statuses = Counter(str(s.status) for s in campaign.store.read().summaries.values())
    serial = after.serial if after else 0
    doc = build(
        log,
        report,
        campaign=campaign.name,
        lineage=after.lineage if after else None,
        serial_before=before.serial if before else 0,
        serial_after=serial,
        statuses=statuses,
        when=now_iso(),
        env=env,
    )
    data = dumps(doc)
    paths = [path] if path is not None else []
    paths += [target_path(t.path, campaign.loaded.base_dir, campaign=campaign.name, serial=serial) for t in targets]
    for where in paths:
        where.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(where, [data], mode=0o644)  # made to be shared: committed or attached to the PR
    return paths


def _drop_empty(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}
