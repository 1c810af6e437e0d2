"""Hostile and broken input, driven through the CLI: a located error, exit 1, fast, nothing sent, state untouched.

Every case starts from a campaign that was applied once (five faxes sent, a lockfile written), breaks
one input, and runs a command. It must answer with exit 1 within a few seconds, without a traceback,
naming the file and line; the sandbox's record of sent faxes and the state files must not change.
Large inputs (a 50 MB manifest, an XLSX zip bomb, a TIFF that claims 40 gigapixels) are generated
here at run time, never committed.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import DEFAULT_ROWS, CampaignDir, Result, write_pdf

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]
#: a resource case must answer within this (generous: the suite shares two cores with other work)
BOUND_SECONDS = 10.0


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), start=1) if needle in text)


def _edit(camp: CampaignDir, old: str, new: str) -> None:
    text = camp.manifest.read_text()
    assert old in text
    camp.manifest.write_text(text.replace(old, new, 1))


def _document(camp: CampaignDir, path: str) -> None:
    _edit(camp, "  - letter.pdf\n", f"  - {json.dumps(path)}\n")


# --- the broken inputs: each mutates an applied campaign and returns the text the error must contain ---


def alias_bomb(camp: CampaignDir) -> list[str]:
    lines = ['laughs0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"laughs{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    camp.manifest.write_text(camp.manifest.read_text() + "\n".join(lines) + "\n")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'laughs5:')}:1", "aliases"]


def huge_manifest(camp: CampaignDir) -> list[str]:
    with camp.manifest.open("a") as fh:
        fh.write(("# " + "x" * 1021 + "\n") * 50 * 1024)  # 50 MB of comments
        fh.write("unknown_key: 1\n")
    return ["campaign.yaml:1:", "over 1024 KB"]


def xlsx_zip_bomb(camp: CampaignDir) -> list[str]:
    # 64 MB of sheet XML that packs into ~70 KB: the shape of a zip bomb, small enough to build quickly.
    bomb = camp.root / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            block = b"<row><c><v>0</v></c></row>" * 40_000
            for _ in range(64 * 1024 * 1024 // len(block)):
                sheet.write(block)
    _edit(camp, "    - path: recipients.csv\n", "    - path: bomb.xlsx\n")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'bomb.xlsx')}:", "bomb.xlsx", "zip bomb"]


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose only IFD claims ``width`` x ``height`` pixels (the strip is not there)."""
    tags = [  # (tag, type, count, value): SHORT=3, LONG=4
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 1),  # 1 bit per sample
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 0),
        (273, 4, 1, 8),  # strip offset
        (278, 4, 1, height),
        (279, 4, 1, 1),  # strip byte count: the file ends long before
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        ifd += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def tiff_bomb(camp: CampaignDir) -> list[str]:
    (camp.root / "huge.tif").write_bytes(_tiff_header(200_000, 200_000))
    _document(camp, "huge.tif")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'huge.tif')}:", "documents[0].path", "huge.tif", "pixels"]


def document_up_the_tree(camp: CampaignDir) -> list[str]:
    write_pdf(camp.root.parent / f"{camp.root.name}-outside.pdf")
    _document(camp, f"../{camp.root.name}-outside.pdf")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'outside.pdf')}:", "documents[0].path", "outside the campaign"]


def document_absolute(camp: CampaignDir) -> list[str]:
    _document(camp, "/etc/passwd")
    return [f"campaign.yaml:{_line_of(camp.manifest, '/etc/passwd')}:", "documents[0].path", "/etc/passwd is outside"]


def document_symlink_out(camp: CampaignDir) -> list[str]:
    (camp.root / "innocent.pdf").symlink_to("/etc/passwd")
    _document(camp, "innocent.pdf")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'innocent.pdf')}:", "a link to /etc/passwd", "--allow-outside"]


def document_symlink_loop(camp: CampaignDir) -> list[str]:
    (camp.root / "loop.pdf").symlink_to(camp.root / "loop2.pdf")
    (camp.root / "loop2.pdf").symlink_to(camp.root / "loop.pdf")
    _document(camp, "loop.pdf")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'loop.pdf')}:", "documents[0].path", "symbolic links"]


def list_outside(camp: CampaignDir) -> list[str]:
    _edit(camp, "    - path: recipients.csv\n", "    - path: /etc/hosts\n")
    return [f"campaign.yaml:{_line_of(camp.manifest, '/etc/hosts')}:", "recipients.files[0].path", "outside"]


def report_outside(camp: CampaignDir) -> list[str]:
    camp.manifest.write_text(
        camp.manifest.read_text() + "reporting:\n  - {type: file, path: ../../../../tmp/owned.json, when: always}\n"
    )
    return [f"campaign.yaml:{_line_of(camp.manifest, 'owned.json')}:", "reporting[0].path", "outside"]


def _rows(camp: CampaignDir, *lines: str) -> None:
    camp.csv.write_text("fax,company\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")


def unclosed_quote_in_number(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", '"+33 1 42 68 53 00,B', *(f"+49 30 1234{i:04d},C{i}" for i in range(20)))
    return ["recipients.csv:3:", "never closed", "column 1 (fax)"]


def unclosed_quote_in_name(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", '+33 1 42 68 53 00,"B', *(f"+49 30 1234{i:04d},C{i}" for i in range(20)))
    return ["recipients.csv:3:", "never closed", "column 2 (company)"]


def number_over_several_lines(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", '"+33 1 42\n68 53 00",B', "+44 20 7946 0123,C")
    return ["recipients.csv:3:", "number field", "holds 2 lines"]


def number_longer_than_any(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", "+44 20 7946 0123,B", "4930" * 30 + ",C")
    return ["recipients.csv:4:", "number field", "120 characters"]


def field_over_the_limit(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", '+44 20 7946 0123,"' + "x" * (2 << 20) + '"', "+1 202 555 0123,C")
    return ["recipients.csv:3:", "column 2 (company)", "1,048,576 characters"]


def not_utf8(camp: CampaignDir) -> list[str]:
    camp.csv.write_bytes(b"fax,company\n+49 30 12345678,A\n+44 20 7946 0123,B\n+1 202 555 0123,Caf\xe9\n")
    return ["recipients.csv:4:", "0xe9", "encoding"]


def every_number_invalid(camp: CampaignDir) -> list[str]:
    _rows(camp, "12,A", "34,B", "56,C")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'recipients:')}:", "none of the 3 recipient rows"]


def mostly_invalid(camp: CampaignDir) -> list[str]:
    _rows(camp, "+49 30 12345678,A", "12,B", "34,C", "+44 20 7946 0123,D", "56,E")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'recipients:')}:", "3 of 5", "max_invalid_percent"]


def suppression_entry_unreadable(camp: CampaignDir) -> list[str]:
    # What `suppress add` used to append to a .txt list: a CSV row, which the reader could only skip.
    (camp.root / "dnf.txt").write_text("+44 20 7946 0123\n+49 30 12345678,asked to stop,2026-01-01,ops\n")
    camp.manifest.write_text(camp.manifest.read_text() + "suppress: [dnf.txt]\n")
    return ["dnf.txt:2:", "suppression entry", "cannot be read"]


def unknown_time_zone(camp: CampaignDir) -> list[str]:
    camp.manifest.write_text(camp.manifest.read_text() + "schedule:\n  concurrency: 2\n  timezone: Europe/Berlni\n")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'timezone:')}:3: schedule.timezone", "Europe/Berlni"]


def unknown_provider_type(camp: CampaignDir) -> list[str]:
    _edit(camp, "  type: sandbox\n", "  type: sandbx\n")
    return [f"campaign.yaml:{_line_of(camp.manifest, 'sandbx')}:3: provider.type", "'sandbx'"]


def foreign_lockfile(camp: CampaignDir) -> list[str]:
    data = camp.lockfile.read_text().replace('"campaign": "test-campaign"', '"campaign": "other-campaign"', 1)
    camp.lockfile.write_text(data)
    return ["campaign.lock.json belongs to campaign 'other-campaign'", "mv ", "campaign.lock.json.other-campaign"]


@dataclass(frozen=True)
class Case:
    break_input: Callable[[CampaignDir], list[str]]
    commands: tuple[tuple[str, ...], ...] = (("validate",), ("plan",), ("apply", "--auto-approve"))


CASES = [
    Case(alias_bomb),
    Case(huge_manifest),
    Case(xlsx_zip_bomb),
    Case(tiff_bomb),
    Case(document_up_the_tree),
    Case(document_absolute),
    Case(document_symlink_out),
    Case(document_symlink_loop),
    Case(list_outside),
    Case(report_outside),
    Case(unclosed_quote_in_number),
    Case(unclosed_quote_in_name),
    Case(number_over_several_lines),
    Case(number_longer_than_any),
    Case(field_over_the_limit),
    Case(not_utf8),
    Case(every_number_invalid),
    Case(mostly_invalid),
    Case(suppression_entry_unreadable),
    Case(unknown_time_zone),
    Case(unknown_provider_type),
    Case(foreign_lockfile, (("plan",), ("apply", "--auto-approve"), ("status",), ("refresh",))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.break_input.__name__ for c in CASES])
def test_broken_input_is_refused(make_campaign: Make, cli: Cli, case: Case) -> None:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    needles = case.break_input(camp)
    lock_before = camp.lockfile.read_bytes()
    sent_before = camp.sent_log.read_bytes()
    for command in case.commands:
        started = time.monotonic()
        result = cli(command[0], camp.manifest, *command[1:])
        elapsed = time.monotonic() - started
        assert result.code == 1, (command, result.err)
        assert "Traceback" not in result.err, result.err
        assert "Internal error" not in result.err, result.err
        for needle in needles:
            assert needle in result.err, (command, needle, result.err)
        assert elapsed < BOUND_SECONDS, (command, elapsed)
        assert camp.sent_log.read_bytes() == sent_before, command
        assert camp.lockfile.read_bytes() == lock_before, command
        assert not camp.journal.exists(), command


USAGE_CASES = [
    (["plan"], "usage: faxops plan", "required: MANIFEST"),
    (["plan", "{m}", "--bogus"], "usage: faxops", "unrecognized arguments: --bogus"),
    (["plan", "{m}", "--at", "yesterday"], "usage: faxops plan", "--at: 'yesterday' is not an ISO 8601 time"),
    (["apply", "{m}", "--lock-timeout", "soon"], "usage: faxops apply", "--lock-timeout: 'soon' is not a duration"),
    (["apply", "{m}", "--lock-timeout", "-5s"], "usage: faxops apply", "--lock-timeout"),
    (["suppress", "add", "+4930901820"], "usage: faxops suppress add", "--reason"),
    (["frobnicate"], "usage: faxops", "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize(("args", "usage", "message"), USAGE_CASES, ids=[" ".join(c[0]) for c in USAGE_CASES])
def test_usage_errors_exit_1_with_the_commands_usage(
    make_campaign: Make, cli: Cli, args: list[str], usage: str, message: str
) -> None:
    camp = make_campaign()
    # exit 2 would read as "changes pending" to a script using plan --detailed-exitcode
    result = cli(*(a.format(m=camp.manifest) for a in args))
    assert result.code == 1, result.err
    assert usage in result.err, result.err
    assert message in result.err, result.err
    assert not camp.sent_log.exists()


def test_allow_outside_lets_the_operator_name_a_folder(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    shared = tmp_path.parent / f"{tmp_path.name}-shared"
    write_pdf(shared / "terms.pdf", pages=1)
    _edit(camp, "  - letter.pdf\n", f"  - letter.pdf\n  - ../{shared.name}/terms.pdf\n")
    assert cli("plan", camp.manifest).code == 1
    assert cli("plan", camp.manifest, "--allow-outside", shared).code == 0  # after the subcommand too
    assert cli("--allow-outside", shared, "apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sent()) == len(DEFAULT_ROWS)


def test_allow_outside_from_the_environment(make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = make_campaign()
    _document(camp, "/etc/hostname" if Path("/etc/hostname").exists() else "/etc/hosts")
    assert "outside the campaign" in cli("validate", camp.manifest).err
    monkeypatch.setenv("FAXOPS_ALLOW_OUTSIDE", "/etc")
    result = cli("validate", camp.manifest)
    assert "outside the campaign" not in result.err


def test_a_symlink_inside_the_campaign_is_fine(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    (camp.root / "docs").mkdir()
    (camp.root / "docs" / "current.pdf").symlink_to(camp.root / "letter.pdf")
    _document(camp, "docs/current.pdf")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sent()) == len(DEFAULT_ROWS)


def test_invalid_share_is_settable_in_the_manifest(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign([*DEFAULT_ROWS[:3], ("12", "bad"), ("34", "bad")])
    assert cli("plan", camp.manifest).code == 1
    _edit(camp, "  default_region: DE\n", "  default_region: DE\n  max_invalid_percent: 50\n")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sent()) == 3


def test_disk_full_during_apply_stops_sending_and_rescues_job_ids(
    make_campaign: Make,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """ENOSPC on every write in the campaign folder after a few journal writes (the sandbox stands in for
    a remote provider, so its own record is exempt)."""
    import errno

    rows = [*DEFAULT_ROWS, *((f"+49 30 1234{i:04d}", f"R{i}") for i in range(20))]
    camp = make_campaign(rows)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    real_write, real_fdopen = os.write, os.fdopen
    writes_left = [6]  # the journal header and five events, then the disk is full

    def in_campaign(fd: int) -> bool:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return target.startswith(str(tmp_path)) and "/.faxops/sandbox" not in target

    def write(fd: int, data: bytes) -> int:
        if in_campaign(fd):
            if writes_left[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            writes_left[0] -= 1
        return real_write(fd, data)

    class FullFile:
        def __init__(self, fh: IO[bytes]) -> None:
            self.fh = fh

        def __enter__(self) -> FullFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> object:
            return getattr(self.fh, name)

    def fdopen(fd: int, mode: str = "r", *args: object, **kwargs: object) -> object:
        fh = real_fdopen(fd, mode, *args, **kwargs)  # type: ignore[call-overload]
        return FullFile(fh) if "w" in mode and in_campaign(fd) and writes_left[0] <= 0 else fh

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fdopen", fdopen)
    result = cli("apply", camp.manifest, "--auto-approve", "--parallelism", "1")
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "fdopen", real_fdopen)

    assert result.code == 1
    assert "Internal error" not in result.err, result.err
    assert "Traceback" not in result.err, result.err
    assert "No space left on device" in result.err
    sent = camp.sent_numbers()
    assert 0 < len(sent) < len(rows)  # nothing more was sent once the journal could not be written
    rescued = list((home / ".faxops" / "rescue").glob("*.jsonl"))
    assert rescued
    assert f"saved to {rescued[0]}" in result.err
    job_ids = [json.loads(line)["job_id"] for line in rescued[0].read_text().splitlines()]
    assert job_ids
    assert all(job_ids)
    # Space is back: the journal is folded, the unanswered send reconciled, and nobody is faxed twice.
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    numbers = camp.sent_numbers()
    assert len(numbers) == len(set(numbers)) == len(rows)


def test_documents_over_the_providers_size_limit(http_campaign: Callable[[str], Any], cli: Cli) -> None:
    from PIL import Image

    camp = http_campaign("telphin")  # one file of at most 10 MB per fax
    page = Image.new("L", (1728, 2300), 255)  # 4 MB a page, uncompressed
    page.save(camp.root / "scan.tif", save_all=True, append_images=[page, page])
    text = camp.manifest.read_text().replace("documents: [letter.pdf]", "documents: [letter.pdf, scan.tif]")
    camp.manifest.write_text(text)
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert f"campaign.yaml:{_line_of(camp.manifest, 'documents:')}:1: documents:" in result.err
    assert "over telphin's limit of 10,485,760 bytes per fax" in result.err
