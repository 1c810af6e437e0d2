"""``faxops show``: print a saved plan from the file alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from faxops.commands.common import EXIT_OK, output_format

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class ShowArgs:
    planfile: Path
    json: bool = False
    details: bool = False
    format: str | None = None  # text | json | markdown
    reveal_numbers: bool = False


def run(args: ShowArgs, output: Output) -> int:
    """Print the saved plan as ``plan`` showed it, or as its JSON document."""
    from faxops import planfile

    fmt = output_format(args.json, args.format)
    saved = planfile.load(args.planfile)
    if fmt == "json":
        output.json(orjson.dumps(saved.model_dump(mode="json")).decode())
    elif fmt == "markdown":
        from faxops import render_markdown

        view = render_markdown.view_of_saved(saved)
        output.document(render_markdown.render(view, reveal_numbers=args.reveal_numbers))
    else:
        output.saved_plan(saved, path=args.planfile, details=args.details)
    return EXIT_OK
