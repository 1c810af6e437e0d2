"""Reconcile never crashes on, nor concludes from, a provider answer of a shape it does not know."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from faxops.testing.server import Response
from tests.campaigns import DONE, HttpCampaign
from tests.conftest import Result

Cli = Callable[..., Result]
#: the handler that answers each provider's lookup
LOOKUP = {"docoon": "summaries", "telphin": "list", "retarus": "reports", "faxplus": "outbox"}
SUBMIT = {
    "docoon": r"/api/v1/FaxJobs",
    "telphin": r".*/fax/out/",
    "retarus": r"/rest/v1/[^/]+/fax",
    "faxplus": r"/v3/accounts/[^/]+/outbox",
}


@pytest.mark.parametrize("shape", [{"unexpected": True}, [{"no": "fields"}], "a string"], ids=["dict", "list", "str"])
@pytest.mark.parametrize("kind", sorted(LOOKUP))
def test_an_unknown_shape_holds_the_job_and_sends_nothing_again(
    kind: str, shape: Any, http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign(kind)
    sim = camp.sim
    sim.inject("drop_after", method="POST", path=SUBMIT[kind])
    cli("apply", camp.manifest, "--auto-approve")
    before = len(sim.received)
    sim.advance(DONE)
    # From now on the lookup's list answers in a shape no adapter expects.
    sim._routes = [
        (m, p, (lambda request, **kw: Response(200, shape)) if h.__name__ == LOOKUP[kind] else h)
        for m, p, h in sim._routes
    ]
    result = cli("reconcile", camp.manifest)
    assert result.code == 5, result.out + result.err
    assert "Traceback" not in result.err
    assert cli("apply", camp.manifest, "--auto-approve").code == 5  # still held: a person decides
    assert len(sim.received) == before
