"""``faxops plan``: show what apply would send; optionally save it for ``apply PLANFILE``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import orjson

from faxops.commands import show
from faxops.commands.common import EXIT_CHANGES, EXIT_OK, output_format
from faxops.errors import InputError, StateLockedError

if TYPE_CHECKING:
    from faxops.campaign import Campaign
    from faxops.changes import InputChanges
    from faxops.output import Output
    from faxops.plan import Plan
    from faxops.state import RecordedState


@dataclass(frozen=True)
class PlanArgs:
    manifest: Path
    refresh: bool = True
    at: datetime | None = None
    json: bool = False
    out: Path | None = None
    details: bool = False
    detailed_exitcode: bool = False
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside
    format: str | None = None  # text | json | markdown
    reveal_numbers: bool = False


def run(args: PlanArgs, output: Output) -> int:
    """Plan the campaign (after a refresh when something is open) and show, save or print it."""
    from faxops import planfile, tracking
    from faxops.campaign import cpu_workers, open_campaign
    from faxops.changes import input_changes

    fmt = output_format(args.json, args.format)
    if planfile.looks_like_plan(args.manifest):
        if args.out or args.at:
            raise InputError(f"{args.manifest} is a saved plan: --out and --at apply to a manifest")
        shown = show.ShowArgs(args.manifest, json=args.json, details=args.details, format=args.format)
        return show.run(replace(shown, reveal_numbers=args.reveal_numbers), output)
    may_refresh = args.refresh and args.at is None
    campaign = open_campaign(args.manifest, secrets=may_refresh, allow_outside=args.allow_outside)
    state = campaign.store.read()
    try:
        # Only when something is open: a warm plan of a million delivered recipients reads the state once.
        if may_refresh and tracking.needs_refresh(campaign, state) and _refresh_before_plan(campaign, output):
            state = campaign.store.read()
    finally:
        campaign.provider.close()
    at = args.at
    if at is not None and at.tzinfo is None:
        # Read as schedule.start_at is: in the campaign's time zone when it fixes one, else UTC.
        zone = campaign.loaded.model.schedule.timezone
        at = at.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    plan = campaign.plan(state, cpu_workers(), now=at)
    changes = input_changes(plan, campaign.inputs_by_kind(), _applied_with(campaign))
    output.problems(campaign.warnings[:20])
    _show(args, fmt, campaign, plan, changes, output)
    if args.out:
        _save(args.out, args.manifest, campaign, plan, state, changes, output)
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _show(args: PlanArgs, fmt: str, campaign: Campaign, plan: Plan, changes: InputChanges, output: Output) -> None:
    from faxops.plan import plan_json

    if fmt == "json":
        output.json(orjson.dumps(plan_json(plan)).decode())
    elif fmt == "markdown":
        from faxops import render_markdown

        view = render_markdown.view_of_plan(
            plan, provider=campaign.provider.name, manifest=_shown_path(args.manifest), changes=changes
        )
        output.document(render_markdown.render(view, reveal_numbers=args.reveal_numbers))
    else:
        output.plan(plan, provider=campaign.provider.name, details=args.details)
        output.planned_for(plan, campaign.loaded.model.schedule.timezone)
        if not plan.has_changes:
            output.line("No changes. Nothing to send.", style="green")


def _save(
    out: Path,
    manifest: Path,
    campaign: Campaign,
    plan: Plan,
    state: RecordedState,
    changes: InputChanges,
    output: Output,
) -> None:
    """``--out``: the plan, what it was made from and against, for ``faxops apply FILE``."""
    from faxops import planfile
    from faxops.state.files import atomic_write

    doc = planfile.dump(
        plan,
        plan_path=out,
        manifest=manifest,
        inputs=campaign.input_digests(),
        state=planfile.state_ref(campaign.name, campaign.store.identity(), state.fingerprint()),
        context={"provider": campaign.provider.name, "changes": changes.to_json()},
    )
    atomic_write(out, [doc], mode=0o600)  # plans hold personal data
    output.hint(
        f"Saved the plan to {out}; run `faxops apply {out}` to execute exactly it.",
        f"Saved the plan to {out}: keep it as an artifact; the apply step runs `faxops apply {out}`.",
    )


def _applied_with(campaign: Campaign) -> Mapping[str, object] | None:
    """What the last apply recorded about its inputs (None: the campaign was never applied)."""
    header = campaign.store.header()
    return header.applied_with if header is not None else None


def _shown_path(path: Path) -> str:
    """A manifest path as a comment shows it: relative to the working directory (the repository in CI)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def _refresh_before_plan(campaign: Campaign, output: Output) -> bool:
    """plan's refresh, never waiting for a lock another run holds. True when it ran."""
    from faxops.tracking import refresh

    try:
        with campaign.store.writer("refresh") as writer:
            report = refresh(campaign, writer)
    except StateLockedError as exc:  # only taking the lock raises it: refresh itself never waits for one
        output.note(f"Not refreshed: {exc.message}")
        return False
    output.refresh(report, brief=True)
    return True
