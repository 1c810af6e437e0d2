"""Saved plans (``faxops plan MANIFEST --out FILE``): the file format, reading it back, and what binds it.

A saved plan is bound to the exact state it was planned against: the campaign, the state's lineage,
serial and journal position, and *where* that state lives. The location matters because a copied
checkout carries a lockfile with the same lineage and serial: without it, ``apply PLANFILE`` in the
copy would pass every other check and fork the campaign's record (the next ordinary apply in either
copy would then fax again what the other one sent). The manifest is recorded relative to the plan
file, so the plan always opens the manifest beside it, never one in another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from faxops.errors import InputError, StalePlanError
from faxops.plan import Plan, plan_json

PLAN_KIND = "faxops-plan"
_REPLAN = "run `faxops plan MANIFEST --out FILE` again here and review the new plan"


class StateRef(BaseModel):
    """The state a plan was made against."""

    model_config = ConfigDict(extra="ignore")

    campaign: str
    location: str  # ``StateStore.identity()``: for local state, the lockfile's absolute path, resolved
    lineage: str | None
    serial: int
    journal_seq: int


class SavedPlan(BaseModel):
    """A saved plan file, as far as faxops needs to trust it before applying it."""

    model_config = ConfigDict(extra="allow")

    kind: str
    format_version: int
    campaign: str
    at: str | None = None
    manifest: str  # relative to the plan file's folder
    inputs: dict[str, str]
    state: StateRef
    summary: dict[str, int]
    actions: list[dict[str, Any]]

    def submit_key(self) -> list[tuple[str, str, int | None]]:
        """The sends and retries of the plan, in the form ``Plan.submit_key`` returns."""
        return [
            (str(a.get("action")), str(a.get("number")), a.get("attempt"))
            for a in self.actions
            if a.get("action") in ("send", "retry")
        ]


def state_ref(campaign: str, identity: str, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What a saved plan records about the state: ``StateStore.identity()`` and ``RecordedState.fingerprint()``."""
    return {"campaign": campaign, "location": identity, **fingerprint}


def dump(
    plan: Plan,
    *,
    plan_path: Path,
    manifest: Path,
    inputs: dict[str, str],
    state: dict[str, Any],
    context: dict[str, Any] | None = None,
) -> bytes:
    """The saved-plan document for ``plan``, to be written at ``plan_path``.

    ``context`` is what ``show PLANFILE`` prints besides the actions (the provider, the inputs changed
    since the last apply); apply never reads it.
    """
    relative = os.path.relpath(manifest.resolve(), plan_path.resolve().parent)
    extra = {**(context or {}), "kind": PLAN_KIND, "manifest": relative, "inputs": inputs, "state": state}
    doc = plan_json(plan, extra=extra)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def looks_like_plan(path: Path) -> bool:
    """True when ``path`` is a JSON document (a saved plan, or an attempt at one), not a YAML manifest."""
    # By content, not by name: a saved plan is a JSON object whatever its file is called.
    try:
        with path.open("rb") as fh:
            return fh.read(1) == b"{"
    except OSError:
        return False  # the caller then reports the unreadable path as a manifest


def load(path: Path) -> SavedPlan:
    """Read and check a saved plan; a damaged or foreign file is an ``InputError`` naming what is wrong."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the saved plan: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a valid saved plan (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != PLAN_KIND:
        raise InputError(f"{path}: not a saved plan (make one with `faxops plan MANIFEST --out FILE`)")
    try:
        return SavedPlan.model_validate(doc)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].lower()}" for e in exc.errors()[:5])
        raise InputError(
            f"{path}: damaged saved plan ({fields})", hint="make a new one with `faxops plan MANIFEST --out FILE`"
        ) from None


def manifest_of(saved: SavedPlan, plan_path: Path) -> Path:
    """The manifest a saved plan applies to: the one at the recorded place relative to the plan file."""
    return plan_path.resolve().parent / saved.manifest


def check_bound(saved: SavedPlan, campaign: str, identity: str) -> None:
    """Refuse (``StalePlanError``, exit 4) a plan made for another campaign or another copy of the state."""
    if saved.state.campaign != campaign or saved.campaign != campaign:
        raise StalePlanError(
            f"the saved plan is for campaign {saved.state.campaign!r}, not {campaign!r}; nothing was sent",
            hint=_REPLAN,
        )
    here = identity
    if saved.state.location != here:
        raise StalePlanError(
            f"the saved plan was made against the state at {saved.state.location}, not {here} "
            "(a copied checkout or a moved campaign); nothing was sent",
            hint=_REPLAN,
        )


def check_state(saved: SavedPlan, fingerprint: dict[str, Any]) -> None:
    """Refuse a plan whose state moved on (another apply, a refresh, a resolve) since it was made."""
    # journal_seq too: an apply killed before its fold leaves the serial as it was, but the journal moved.
    recorded = {k: getattr(saved.state, k) for k in ("lineage", "serial", "journal_seq")}
    if recorded != {k: fingerprint.get(k) for k in recorded}:
        raise StalePlanError(
            "the saved plan is stale: the recorded state changed since it was made",
            hint=_REPLAN,
        )


def check_inputs(saved: SavedPlan, current: dict[str, str]) -> None:
    """Refuse a plan whose manifest, lists or documents changed since it was made."""
    before = saved.inputs
    # Both ways: a list added to the manifest since is a change as much as one edited.
    changed = sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))
    if changed:
        raise StalePlanError(
            f"the saved plan is stale: {', '.join(changed)} changed since it was made",
            hint="run `faxops plan` again and review the new plan",
        )
