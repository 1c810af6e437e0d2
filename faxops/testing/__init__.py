"""Loopback simulators of the provider APIs, for tests and for trying faxops without an account.

``SIMULATORS`` maps a provider type to its simulator, the way ``faxops.providers.REGISTRY`` maps it to
its adapter.
"""

from __future__ import annotations

from faxops.testing.retarus import RetarusSimulator
from faxops.testing.server import Simulator
from faxops.testing.telphin import TelphinSimulator

SIMULATORS: dict[str, type[Simulator]] = {
    "retarus": RetarusSimulator,
    "telphin": TelphinSimulator,
}

__all__ = ["SIMULATORS", "Simulator"]
