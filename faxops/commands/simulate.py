"""``faxops simulate``: run a loopback simulator of a provider API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faxops.commands.common import EXIT_OK, serve_until_interrupted
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.output import Output


@dataclass(frozen=True)
class SimulateArgs:
    provider: str
    port: int = 8025
    transmit_seconds: float | None = None


def run(args: SimulateArgs, output: Output) -> int:
    """Serve the simulator until interrupted, saying which base_url a manifest should use."""
    from faxops.testing import SIMULATORS

    if args.provider not in SIMULATORS:
        raise InputError(f"no simulator for {args.provider!r} (there are: {', '.join(sorted(SIMULATORS))})")
    sim = SIMULATORS[args.provider](port=args.port, transmit_seconds=args.transmit_seconds).start()
    output.line(f"{args.provider} simulator listening on {sim.url}")
    urls = ", ".join(
        f"{key}: [{', '.join(value)}]" if isinstance(value, list) else f"{key}: {value}"
        for key, value in sim.manifest_settings().items()
    )
    output.line(f"Point a manifest at it with `provider: {{type: {args.provider}, {urls}, ...}}`;")
    output.line("see campaigns/ for an example per provider. Control it under /_sim/ (faults, outcomes, advance).")
    serve_until_interrupted(output, sim.stop)
    return EXIT_OK
