"""Loopback simulators of the provider APIs, for tests and for trying faxops without an account.

``SIMULATORS`` maps a provider type to its simulator, the way ``faxops.providers.REGISTRY`` maps it to
its adapter.
"""

from __future__ import annotations

from faxops.testing.docoon import DocoonSimulator
from faxops.testing.faxplus import FaxPlusSimulator
from faxops.testing.retarus import RetarusSimulator
from faxops.testing.server import Simulator
from faxops.testing.telphin import TelphinSimulator
from faxops.testing.voipnow import VoipNowSimulator

SIMULATORS: dict[str, type[Simulator]] = {
    "docoon": DocoonSimulator,
    "faxplus": FaxPlusSimulator,
    "retarus": RetarusSimulator,
    "telphin": TelphinSimulator,
    "voipnow": VoipNowSimulator,
}

__all__ = ["SIMULATORS", "Simulator"]
