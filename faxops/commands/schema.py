"""``faxops schema``: print the JSON Schema of campaign manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from faxops.commands.common import EXIT_OK

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class SchemaArgs:
    pass


def run(args: SchemaArgs, output: Output) -> int:
    """Print the schema generated from the manifest models (``make schemas`` commits it)."""
    from faxops.manifest import campaign_schema

    output.json(orjson.dumps(campaign_schema(), option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK
