"""Network namespaces in tests: skipped where they cannot be made, unless the run requires them."""

from __future__ import annotations

import os

import pytest

from faxops.testing import netns


def namespaces_or_skip() -> None:
    """Skip the test, saying why, when network namespaces cannot be made here (not root, no ``ip``).
    With ``FAXOPS_REQUIRE_NETNS`` set (``.ci/run`` sets it as root) that is a failure instead."""
    reason = netns.unavailable()
    if reason is None:
        return
    if os.environ.get("FAXOPS_REQUIRE_NETNS"):
        pytest.fail(f"FAXOPS_REQUIRE_NETNS is set but {reason}")
    pytest.skip(reason)
