"""Open a campaign: the manifest with everything it names, checked for meaning before anything is sent.

``open_campaign`` does all of a command's input I/O except streaming the recipient list, and raises one
``InputError`` that lists every problem it found (not just the first).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from faxops import clock
from faxops.chunks import Chunk
from faxops.compliance import compliance_problems
from faxops.domain import Document, Invalid, Recipient, Sender
from faxops.errors import InputError, Problem
from faxops.inputs import (
    RowTally,
    invalid_share_problem,
    load_documents,
    named_file_problems,
    personalisation_warnings,
    secret_problems,
)
from faxops.manifest import LoadedManifest, iter_paths, load_manifest
from faxops.number_columns import NumberColumns
from faxops.pace import Pace
from faxops.plan import Plan, Rules, make_plan
from faxops.providers import REGISTRY, Provider, ProviderContext
from faxops.recipients import NumberCache, iter_sources, resolve_sources
from faxops.schedule import RetryPolicy, Schedule
from faxops.state import RecordedState, StatePaths, StateStore, open_store
from faxops.suppression import global_suppression_list, load_suppressions

_T = TypeVar("_T")


def cpu_workers() -> int:
    try:
        # The CPUs this process may run on, not the machine's: a CI runner or container pinned to two cores reports
        # the host's 64 in os.cpu_count(), and that many workers would only thrash.
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Campaign:
    """A loaded, checked campaign, ready to plan."""

    loaded: LoadedManifest
    documents: list[Document]
    provider: Provider
    suppressed: dict[str, str]
    warnings: list[Problem] = field(default_factory=list)
    cache: NumberCache | None = None

    @property
    def name(self) -> str:
        return self.loaded.name

    @cached_property
    def store(self) -> StateStore:
        """Where this campaign's state is recorded (the manifest's ``state:`` block)."""
        return open_store(self.loaded.path, self.name, self.loaded.model.state)

    @property
    def paths(self) -> StatePaths:
        return StatePaths.for_manifest(self.loaded.path, self.name)

    @property
    def sender(self) -> Sender:
        s = self.loaded.model.sender
        return Sender(csid=s.csid, header=s.header, number=s.number, name=s.name)

    @property
    def pages_per_fax(self) -> int:
        return sum(d.pages or 0 for d in self.documents)

    @property
    def unknown_page_documents(self) -> int:
        return sum(1 for d in self.documents if d.pages is None)

    def candidates(self, workers: int = 1) -> Iterator[Recipient | Invalid]:
        """The recipient list, streamed and normalised."""
        for item in self.candidate_chunks(workers):
            if isinstance(item, Chunk):
                yield from item.items()
            else:
                yield item

    def candidate_chunks(self, workers: int = 1) -> Iterator[Recipient | Invalid | Chunk]:
        """The recipient list, streamed and normalised, files' rows in chunks (what ``make_plan`` reads)."""
        cache = self.cache or NumberCache(None)
        yield from resolve_sources(iter_sources(self.loaded), cache, workers=workers)
        cache.save()
        cache.unload()

    @property
    def schedule(self) -> Schedule:
        return Schedule.from_spec(self.loaded.model.schedule)

    def pace(self, parallelism: int | None = None) -> Pace:
        """Rate, concurrency and batch size on this provider (``parallelism`` overrides concurrency)."""
        return Pace.of(self.loaded.model.schedule, self.provider, parallelism)

    def rules(self, now: datetime | None = None, resend: Mapping[str, str] | None = None) -> Rules:
        model = self.loaded.model
        return Rules(
            now=now or clock.now(),
            policy=RetryPolicy.from_spec(model.retry),
            schedule=self.schedule,
            resend=dict(resend or {}),
            per_page=model.budget.per_page,
            currency=model.budget.currency if model.budget.per_page else None,
            per_minute=self.pace().steady_per_minute,
            provider_side=model.schedule.provider_side and self.provider.can_schedule,
        )

    def plan(
        self,
        state: RecordedState,
        workers: int = 1,
        *,
        now: datetime | None = None,
        resend: Mapping[str, str] | None = None,
        names: bool = False,
    ) -> Plan:
        """The plan for this campaign against ``state``.

        An empty recipient list is an input error, and so is a list with too many invalid rows
        (``recipients.max_invalid_percent``): see ``invalid_share_problem``. ``names``: keep each
        recipient's name in its action (for a report).
        """
        tally = RowTally()
        plan = make_plan(
            self.name,
            tally.count(self.candidate_chunks(workers)),
            state.summaries,
            suppressed=self.suppressed,
            rules=self.rules(now, resend),
            pages_per_fax=self.pages_per_fax,
            unknown_page_documents=self.unknown_page_documents,
            names=names,
        )
        if not any(plan.groups.values()):
            raise InputError(
                "the recipient list is empty",
                [self.loaded.problem(("recipients",), "no recipient rows found in the inline entries or files")],
            )
        problem = invalid_share_problem(self.loaded, tally)
        if problem is not None:
            raise InputError("too many recipient rows have no valid number; nothing was sent", [problem])
        return plan

    def applied_with(self) -> dict[str, Any]:
        """Digests recorded in the lockfile: which manifest and documents the state was applied with."""
        return {
            "manifest": self.loaded.digest,
            "documents": {self._rel(d.path): d.sha256 for d in self.documents},
            # Every input (lists too), so that the next plan can say what changed since this apply.
            "inputs": self.inputs_by_kind(),
        }

    def input_digests(self) -> dict[str, str]:
        """Digests of every input file, for saved-plan staleness checks."""
        digests = {self._rel(self.loaded.path): self.loaded.digest}
        for _, path in iter_paths(self.loaded):
            digests[self._rel(path)] = _sha256(path)
        return digests

    def inputs_by_kind(self) -> dict[str, dict[str, str]]:
        """``input_digests`` by kind (manifest, documents, recipients, suppress): what ``plan`` diffs."""
        digests = self.input_digests()
        kinds: dict[str, dict[str, str]] = {"manifest": {self._rel(self.loaded.path): self.loaded.digest}}
        for loc, path in iter_paths(self.loaded):
            rel = self._rel(path)
            kinds.setdefault(str(loc[0]), {})[rel] = digests[rel]
        return kinds

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.loaded.base_dir.resolve()))
        except ValueError:
            return str(path.resolve())


LARGE_LOCKFILE = 50 * 1024 * 1024  # GitHub warns at 50 MB and refuses files over 100 MB


def large_lockfile_warning(lockfile: Path, limit: int | None = None) -> Problem | None:
    """A warning when the lockfile has outgrown Git (every apply commits a new copy of it)."""
    limit = limit or LARGE_LOCKFILE
    try:
        size = lockfile.stat().st_size
    except OSError:
        return None
    if size <= limit:
        return None
    return Problem(
        f"the lockfile is {size / 1024 / 1024:,.0f} MB, over {limit / 1024 / 1024:,.0f} MB: too large to keep "
        "in Git (hosts refuse files over 100 MB and every apply adds a copy to the history); move the state "
        "to the PostgreSQL backend (`state:` in the manifest or FAXOPS_STATE_URL) and stop committing it",
        file=lockfile,
        severity="warning",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return "missing"
    return digest.hexdigest()


def make_provider(loaded: LoadedManifest) -> Provider:
    settings = loaded.model.provider
    provider_cls = REGISTRY[settings.type]
    return provider_cls(settings, ProviderContext(base_dir=loaded.base_dir, campaign=loaded.name))


def open_campaign(
    path: Path, *, use_cache: bool = True, secrets: bool = True, allow_outside: Sequence[Path] = ()
) -> Campaign:
    """Load the manifest and everything it names; raise ``InputError`` listing every problem.

    ``secrets=False`` is for commands that never call the provider (``plan --refresh=false``, ``plan
    --at``): a reviewer without the credentials can still see the plan. Providers resolve secrets only
    when they call out, so nothing else needs them. ``allow_outside``: folders outside the manifest's
    own that it may name files in (``--allow-outside``).
    """
    loaded = load_manifest(path, allow_outside=allow_outside)
    documents, problems = load_documents(loaded)
    # Every check below appends instead of raising, so that one run of validate lists every problem of a manifest; a
    # reviewer fixing them one at a time would otherwise need a round trip per mistake.
    problems.extend(named_file_problems(loaded))
    sources = loaded.model.recipients
    if not sources.inline and not sources.files:
        problems.append(loaded.problem(("recipients",), "no recipients: add `inline:` entries or `files:`"))
    if secrets:
        problems.extend(secret_problems(loaded, loaded.model, ()))
    provider = make_provider(loaded)
    sender = loaded.model.sender
    for problem in provider.check(documents, Sender(sender.csid, sender.header, sender.number, sender.name)):
        if problem.file is None and problem.field:
            problem = loaded.problem((problem.field,), problem.message)
        problems.append(problem)
    problems.extend(compliance_problems(loaded, provider, documents))
    # Stop before the suppression lists and the recipient stream are read: those are the slow parts, and nothing may
    # be planned, let alone sent, from a campaign with an error in it.
    if any(p.severity != "warning" for p in problems):
        raise InputError(f"{path}: {len(problems)} problem(s)", problems)
    warnings_early = [p for p in problems if p.severity == "warning"]
    # The organisation-wide list is read for every campaign, whatever its manifest says: a manifest from a pull
    # request must not be able to opt out of the company's do-not-fax list by not naming it.
    global_list = global_suppression_list()
    extra = [(global_list, "global suppression list")] if global_list is not None else []
    suppressed, warnings = load_suppressions(loaded, extra)
    warnings.extend(personalisation_warnings(loaded, provider))
    warnings.extend(warnings_early)
    # A warning, not an error: refusing to run would strand the state of a campaign already under way.
    large = large_lockfile_warning(StatePaths.for_manifest(path).lockfile)
    if large is not None:
        warnings.append(large)
    cache = None
    if use_cache:
        # Only a speed-up (raw -> E.164 across runs); without it every number is parsed again, same result.
        paths = StatePaths.for_manifest(loaded.path)
        cache = NumberCache(paths.number_cache, NumberColumns(paths.number_columns))
    return Campaign(loaded, documents, provider, suppressed, warnings, cache)


def check_recipients(campaign: Campaign, workers: int = 1) -> tuple[list[Problem], int]:
    """Stream the whole list: warnings for invalid rows, an error for an empty list; and the valid count."""
    problems: list[Problem] = []
    tally = RowTally()
    for candidate in tally.count(campaign.candidates(workers)):
        if isinstance(candidate, Invalid):
            problems.append(
                Problem(
                    f"number {candidate.raw!r} skipped: {candidate.reason}",
                    file=candidate.source,
                    severity="warning",
                )
            )
    if tally.valid + tally.invalid == 0:
        problems.append(campaign.loaded.problem(("recipients",), "the recipient list has no valid number"))
    share = invalid_share_problem(campaign.loaded, tally)
    if share is not None:
        problems.append(share)
    return problems, tally.valid
