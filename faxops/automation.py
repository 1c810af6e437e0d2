"""Automation mode: faxops run by a pipeline (``CI`` or ``FAXOPS_IN_AUTOMATION`` set), not by a person.

In automation nothing prompts (apply needs ``--auto-approve`` or a saved plan: a prompt in CI would
hang until the job times out), output has no colour and no live progress bar (a log keeps every
redraw), and hints name the pipeline's next step instead of telling a person what to type.
"""

from __future__ import annotations

from collections.abc import Mapping

_FALSE = ("", "0", "false", "no")


def in_automation(env: Mapping[str, str]) -> bool:
    """True when ``FAXOPS_IN_AUTOMATION`` or ``CI`` (set by GitHub Actions, GitLab CI and most others) is set."""
    return any(env.get(key, "").strip().lower() not in _FALSE for key in ("FAXOPS_IN_AUTOMATION", "CI"))
