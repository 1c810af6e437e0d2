"""Masking what a pull request, a CI log or a committed receipt must not show in full.

A fax number is personal data: comments and receipts keep the country and area code (enough to see
that the plan goes where it should) and the last four digits (enough to find the row in the list),
and hide the rest. Job IDs are hashed, not cut: a provider's IDs are often sequential, so a prefix
would still identify the job.
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

MASK = "••••"
_GROUP_SPLIT = re.compile(r"[\s\-]+")


def mask_number(number: str) -> str:
    """``+493012345678`` -> ``+49 30 •••• 5678``; text that is not a number at all becomes ``••••``."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return MASK
    national = phonenumbers.national_significant_number(parsed)
    groups = _GROUP_SPLIT.split(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    country = f"+{parsed.country_code}"
    area = groups[1] if len(groups) > 2 and groups[1].isdigit() else ""
    rest = national[len(area) :]
    # A short remainder would be shown almost whole by its last four digits: hide it all.
    tail = rest[-4:] if len(rest) > 6 else ""
    return " ".join(part for part in (country, area, MASK, tail) if part)


def hash_id(value: str, *, salt: str = "") -> str:
    """A stable, short, one-way token for a job ID (``sha256:`` and 16 hex digits).

    The salt is the campaign's lineage, so the same job ID in two campaigns gives two tokens, while
    whoever holds the lockfile can still recompute the token and find the job.
    """
    return "sha256:" + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


_NUMBER_IN_TEXT = re.compile(r"\+\d[\d ()./-]{5,}\d|(?<![\w.:-])\d{7,}(?![\w.:-])")


def scrub(text: str) -> str:
    """Free text (a provider's reason, a recipient's name) with every fax number in it masked.

    Only runs that are numbers beyond doubt are touched: ``+`` and digits, or seven digits and more;
    dates and times (2026-11-24T09:00) have neither.
    """
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group()) if m.group().startswith("+") else MASK, text)
