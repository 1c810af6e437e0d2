"""``faxops webhook serve``: receive provider status pushes into the campaign's inbox (a file or the database)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK, serve_until_interrupted

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class WebhookArgs:
    manifest: Path
    port: int = 8080
    host: str = "127.0.0.1"
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def run(args: WebhookArgs, output: Output) -> int:
    """Serve until interrupted; say how many updates were accepted and refused."""
    from faxops.manifest import load_manifest
    from faxops.receiver import Receiver, credentials_for
    from faxops.state import StatePaths, open_store
    from faxops.webhook import PARSERS

    _log_to_stderr("faxops.webhook", "uvicorn.error")
    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    credentials = credentials_for(loaded)
    store = open_store(args.manifest, loaded.name, loaded.model.state)
    paths = StatePaths.for_manifest(
        args.manifest, loaded.name
    )  # the local backend's files; postgres keeps pushes in the database
    receiver = Receiver(paths, loaded.name, credentials, host=args.host, port=args.port, store=store).start()
    output.line(f"Receiving status pushes for campaign {loaded.name} on {receiver.url}")
    output.line("  " + " · ".join(f"{label}: /{name}" for name, label in PARSERS.items()))
    output.line("  Authenticate with Basic auth (user from status_push.username), a Bearer token, or ?token=.")
    serve_until_interrupted(output, receiver.stop)
    output.line(f"Stopped: {receiver.accepted} update(s) accepted, {receiver.rejected} request(s) refused.")
    return EXIT_OK


def _log_to_stderr(*names: str) -> None:
    """One line per event on stderr (scrubbed like all output), for a server that runs unattended."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        # uvicorn's own INFO lines (startup banners) repeat what the command prints; its warnings matter.
        logger.setLevel(logging.INFO if name.startswith("faxops") else logging.WARNING)
