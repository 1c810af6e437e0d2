"""``faxops validate``: check manifests without sending or touching state."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_ERROR, EXIT_OK
from faxops.errors import InputError, Problem

if TYPE_CHECKING:
    from faxops.campaign import Campaign
    from faxops.output import Output

# A list of 100,000 rows with a bad column would otherwise bury the summary line.
_WARNINGS_SHOWN = 100


@dataclass(frozen=True)
class ValidateArgs:
    manifests: list[Path]
    strict: bool = False
    only_manifests: bool = False  # skip YAML files without a top-level campaign: key (pre-commit hooks)
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: ValidateArgs, output: Output) -> int:
    """Check each manifest; exit 1 when any has an error (or, with ``--strict``, a warning)."""
    from faxops.fmt import find_manifests

    failed = False
    paths = find_manifests(args.manifests, only_manifests=True) if args.only_manifests else args.manifests
    for path in paths:
        failed = not _validate_one(path, args, output) or failed
    return EXIT_ERROR if failed else EXIT_OK


def _validate_one(path: Path, args: ValidateArgs, output: Output) -> bool:
    from faxops.campaign import check_recipients, cpu_workers, open_campaign

    campaign: Campaign | None = None
    valid = 0
    try:
        campaign = open_campaign(path, allow_outside=args.allow_outside)
        problems, valid = check_recipients(campaign, cpu_workers())
        problems = campaign.warnings + problems
    except InputError as exc:
        problems = exc.problems or [Problem(exc.message, file=path)]
    errors = [p for p in problems if p.severity != "warning"]
    warnings = [p for p in problems if p.severity == "warning"]
    output.problems(errors)
    output.problems(warnings[:_WARNINGS_SHOWN])
    if len(warnings) > _WARNINGS_SHOWN:
        output.warning(f"… and {len(warnings) - _WARNINGS_SHOWN} more warnings")
    if errors or (args.strict and warnings):
        output.failure(f"{path}: {len(errors)} error(s), {len(warnings)} warning(s)")
        return False
    if campaign is not None:
        output.line(
            f"✓ {path}: campaign {campaign.name} is valid: {valid} row(s) with a valid number, "
            f"{len(campaign.documents)} document(s) ({campaign.pages_per_fax} page(s) per fax), provider "
            f"{campaign.provider.name}" + (f", {len(warnings)} warning(s)" if warnings else "")
        )
    return True
