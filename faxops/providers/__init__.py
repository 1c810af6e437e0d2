"""Fax providers: one module per API, all listed in ``REGISTRY``.

Adding a provider is one module (a ``Provider`` subclass with its settings model), one line here, and
one simulator in ``faxops.testing``; the shared test battery then covers it.
"""

from __future__ import annotations

from faxops.providers.base import JobRef, Lookup, Provider, ProviderContext, ProviderSettings
from faxops.providers.docoon import DocoonProvider
from faxops.providers.faxplus import FaxPlusProvider
from faxops.providers.retarus import RetarusProvider
from faxops.providers.sandbox import SandboxProvider
from faxops.providers.telphin import TelphinProvider
from faxops.providers.voipnow import VoipNowProvider

REGISTRY: dict[str, type[Provider]] = {
    "sandbox": SandboxProvider,
    "docoon": DocoonProvider,
    "faxplus": FaxPlusProvider,
    "retarus": RetarusProvider,
    "telphin": TelphinProvider,
    "voipnow": VoipNowProvider,
}

__all__ = ["REGISTRY", "JobRef", "Lookup", "Provider", "ProviderContext", "ProviderSettings"]
