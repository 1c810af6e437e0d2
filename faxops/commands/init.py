"""``faxops init``: create a new campaign folder to start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from faxops.commands.common import EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class InitArgs:
    directory: Path
    provider: str = "sandbox"
    ci: Literal["github", "gitlab", "none"] = "github"


def run(args: InitArgs, output: Output) -> int:
    """Write the campaign's starting files and say what to do next."""
    from faxops.scaffold import init_campaign, relative_to_cwd

    written = init_campaign(args.directory, provider=args.provider, ci=None if args.ci == "none" else args.ci)
    for path in written:
        output.line(f"created {relative_to_cwd(path)}")
    manifest = relative_to_cwd(args.directory / "campaign.yaml")
    output.hint(
        f"Next: add recipients to the CSV, then `faxops validate {manifest}` and `faxops plan {manifest}`.",
        f"Created the campaign {manifest}.",
    )
    return EXIT_OK
