"""`faxops fmt`: canonical layout, comments kept, numbers quoted, a second run changes nothing."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from faxops.fmt import format_text
from faxops.manifest import load_manifest
from tests.conftest import Result

Cli = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))

SCRAMBLED = """\
# yaml-language-server: $schema=campaign.schema.json
# The campaign, written by hand in no particular order.
documents: [letter.pdf]   # the letter
recipients:
    inline:
        - {number: '+49 30 12345678', name: Kanzlei}   # first
        - number: +4930901820
        - number: 030 90182000
    default_region: DE
provider:
    outcomes: {'+33142685301': busy, +442079460123: invalid}
    type: sandbox
campaign:
    name: scrambled # short, part of every reference
reporting:
  - when: always
    path: r.json
    type: file
"""


def _comments(text: str) -> list[str]:
    return sorted(m.group().strip() for m in re.finditer(r"#[^\n]*", text))


def _data(text: str) -> object:
    return YAML(typ="safe").load(text)


@pytest.mark.parametrize("manifest", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_canonical(manifest: Path, cli: Cli) -> None:
    text = manifest.read_text(encoding="utf-8")
    assert format_text(text) == text
    check = cli("fmt", "--check", manifest)
    assert check.code == 0, check.out + check.err


@pytest.mark.parametrize("manifest", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_round_trip_of_every_example_scrambled(manifest: Path) -> None:
    """Reverse every block's keys: fmt restores the order, keeps the comments and the data."""
    text = manifest.read_text(encoding="utf-8")
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    document = yaml.load(text)
    for key in list(document)[::-1]:
        document.move_to_end(key)
    import io

    buffer = io.StringIO()
    yaml.dump(document, buffer)
    scrambled = buffer.getvalue()
    assert scrambled != text
    formatted = format_text(scrambled)
    assert format_text(formatted) == formatted
    assert _comments(formatted) == _comments(text)
    assert _data(formatted) == _data(text)
    assert list(YAML(typ="safe").load(formatted)) == list(YAML(typ="safe").load(text))


def test_fmt_rewrites_and_check_lists(tmp_path: Path, cli: Cli) -> None:
    manifest = tmp_path / "campaign.yaml"
    manifest.write_text(SCRAMBLED)
    (tmp_path / "other.yaml").write_text("services:\n    web: {image: nginx}\n")  # not a manifest: left alone
    check = cli("fmt", "--check", tmp_path)
    assert check.code == 1
    assert check.out.splitlines() == [str(manifest)]
    assert manifest.read_text() == SCRAMBLED  # --check changes nothing
    assert cli("fmt", tmp_path).code == 0
    formatted = manifest.read_text()
    assert formatted == (
        "# yaml-language-server: $schema=campaign.schema.json\n"
        "# The campaign, written by hand in no particular order.\n"
        "campaign:\n"
        "  name: scrambled   # short, part of every reference\n"  # comment columns are the author's
        "provider:\n"
        "  type: sandbox\n"
        '  outcomes: {"+33142685301": busy, "+442079460123": invalid}\n'
        "documents: [letter.pdf]   # the letter\n"
        "recipients:\n"
        "  default_region: DE\n"
        "  inline:\n"
        '    - {number: "+49 30 12345678", name: Kanzlei}       # first\n'
        '    - number: "+4930901820"\n'
        '    - number: "030 90182000"\n'
        "reporting:\n"
        "  - type: file\n"
        "    path: r.json\n"
        "    when: always\n"
    )
    assert (tmp_path / "other.yaml").read_text() == "services:\n    web: {image: nginx}\n"
    again = cli("fmt", "--check", tmp_path)
    assert again.code == 0
    assert again.out == ""


def test_quoting_recovers_what_yaml_read_as_an_integer(tmp_path: Path, cli: Cli) -> None:
    """Unquoted +4930... is an integer to YAML and validate refuses it; fmt quotes the text as written."""
    root = tmp_path
    shutil.copy(ROOT / "campaigns" / "example" / "documents" / "price-list.pdf", root / "letter.pdf")
    manifest = root / "campaign.yaml"
    manifest.write_text(
        "campaign: {name: ints}\ndocuments: [letter.pdf]\nrecipients:\n  inline:\n    - number: +493012345678\n"
    )
    assert cli("validate", manifest).code == 1
    assert cli("fmt", manifest).code == 0
    assert '    - number: "+493012345678"\n' in manifest.read_text()
    assert cli("validate", manifest).code == 0
    assert load_manifest(manifest).model.recipients.inline[0].number == "+493012345678"


def test_fmt_reports_bad_yaml_with_its_line(tmp_path: Path, cli: Cli) -> None:
    manifest = tmp_path / "campaign.yaml"
    manifest.write_text("campaign:\n  name: x\n  bad: [unclosed\n")
    result = cli("fmt", manifest)
    assert result.code == 1
    assert f"{manifest}:4" in result.err or f"{manifest}:3" in result.err
    assert "Traceback" not in result.err
