"""Checks of what a fax campaign must carry by law or by the provider's limits, made before anything is sent.

Marketing faxes need an opt-out notice that is honoured (a suppression list), every fax needs its sender
identified, and schedule options must be ones the provider can keep. Most findings are warnings: a
scanned first page cannot be read, and a notice may be worded in a way these checks do not know.
"""

from __future__ import annotations

from faxops.documents import first_page_text
from faxops.domain import Document
from faxops.errors import Problem
from faxops.manifest import LoadedManifest
from faxops.pace import Pace
from faxops.providers import REGISTRY, Provider
from faxops.suppression import global_suppression_list

_OPT_OUT_WORDS = ("opt out", "opt-out", "optout", "unsubscribe", "remove your number", "no more faxes", "abmelden")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def compliance_problems(loaded: LoadedManifest, provider: Provider, documents: list[Document]) -> list[Problem]:
    """The marketing gate, sender identification, and schedule options the provider cannot honour."""
    model = loaded.model
    problems: list[Problem] = []
    # The first page is read once: both the opt-out notice and the sender identification live there.
    first_text = first_page_text(documents[0]) if documents else None
    if model.schedule.provider_side and not provider.can_schedule:
        problems.append(
            loaded.problem(
                ("schedule", "provider_side"),
                f"{provider.name} cannot schedule faxes on its side ({_can_schedule()} can); "
                "remove provider_side to let faxops defer them",
            )
        )
    if model.campaign.purpose == "marketing":
        problems += _marketing_problems(loaded, documents, first_text)
    pace = Pace.of(model.schedule, provider)
    if pace.batch_capped:
        problems.append(
            loaded.problem(
                ("schedule", "batch_size"),
                f"{provider.name} takes at most {provider.job_size()} recipient(s) per job: jobs will hold "
                f"{pace.batch_size}, not {pace.requested_batch_size}",
                severity="warning",
            )
        )
    problems += _sender_problems(loaded, provider, first_text)
    return problems


def _can_schedule() -> str:
    """The providers that take a start time, from the registry (so a new one is named without an edit here)."""
    names = [name for name, provider in REGISTRY.items() if provider.can_schedule]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _marketing_problems(loaded: LoadedManifest, documents: list[Document], first_text: str | None) -> list[Problem]:
    """Unsolicited fax advertising is legal (where it is) only with an opt-out notice that is honoured."""
    model = loaded.model
    problems: list[Problem] = []
    opt_out = model.campaign.opt_out
    if opt_out is None:
        problems.append(
            loaded.problem(
                ("campaign", "purpose"),
                "a marketing campaign needs `campaign.opt_out` (a number and a free way to opt out, printed "
                "on the first page or cover)",
            )
        )
    global_list = global_suppression_list()
    if not model.suppress and not (global_list is not None and global_list.exists()):
        problems.append(
            loaded.problem(
                ("campaign", "purpose"),
                "a marketing campaign needs a suppression list (`suppress:`, or the global list named by "
                "FAXOPS_SUPPRESSION_LIST) so that opt-outs are honoured",
            )
        )
    if opt_out is None:
        return problems
    # Warnings, not errors: a scanned page cannot be read, and the notice may be worded otherwise.
    if first_text is None:
        problems.append(
            loaded.problem(
                ("documents", 0),
                f"cannot read the first page of {documents[0].name} ({documents[0].format}) to check the "
                "opt-out notice; make sure it is printed there",
                severity="warning",
            )
        )
        return problems
    words = (opt_out.text,) if opt_out.text else _OPT_OUT_WORDS
    text = " ".join(first_text.lower().split())
    has_words = any(w.lower() in text for w in words)
    # The last six digits: the page may print the number in national form or with spaces and dashes.
    has_number = _digits(opt_out.number)[-6:] in _digits(first_text)
    if not (has_words and has_number):
        missing = "words" if not has_words else "number"
        problems.append(
            loaded.problem(
                ("documents", 0),
                f"the first page of {documents[0].name} has no opt-out notice (the opt-out {missing} "
                f"was not found: expected {', '.join(repr(w) for w in words[:3])} and "
                f"{opt_out.number})",
                severity="warning",
            )
        )
    return problems


def _sender_problems(loaded: LoadedManifest, provider: Provider, first_text: str | None) -> list[Problem]:
    """A fax must identify its sender: a header line the provider prints, or the first page itself."""
    sender = loaded.model.sender
    header = bool(sender.header) and provider.prints_header
    on_page = False
    if first_text:
        page_digits = _digits(first_text)
        on_page = bool(
            (sender.number and _digits(sender.number)[-6:] in page_digits)
            or (sender.name and sender.name.lower() in first_text.lower())
        )
    if header or on_page:
        return []
    why = f"{provider.name} does not print sender.header" if sender.header else "sender.header is not set"
    return [
        loaded.problem(
            ("sender",),
            f"no sender identification: {why}, and the first page does not carry the sender's name or number "
            "(many countries, e.g. the US under 47 CFR 64.1604, require the date and time, the sender and its "
            "number on every fax)",
            severity="warning",
        )
    ]
