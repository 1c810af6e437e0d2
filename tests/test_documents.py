"""Documents: format from content, pages, fingerprints, damaged files."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from faxops.documents import DocumentError, load_document
from tests.conftest import write_pdf


def _zip(path: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, "<xml/>")
    return path


def test_pdf_pages_and_fingerprint(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "a.pdf", pages=3)
    doc = load_document(path)
    assert (doc.format, doc.pages, doc.size) == ("pdf", 3, path.stat().st_size)
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_multipage_tiff(tmp_path: Path) -> None:
    pages = [Image.new("1", (1728, 2200), 1) for _ in range(4)]
    path = tmp_path / "fax.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:], compression="group4")
    doc = load_document(path)
    assert (doc.format, doc.pages) == ("tiff", 4)


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("note.txt", "Grüße aus Berlin\n".encode(), "txt"),
        ("page.html", b"<!DOCTYPE html><html><body>hi</body></html>", "html"),
        ("x.ps", b"%!PS-Adobe-3.0\n", "ps"),
        ("x.pcl", b"\x1bE\x1b&l0O", "pcl"),
    ],
)
def test_formats_detected_from_content(tmp_path: Path, name: str, content: bytes, fmt: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    doc = load_document(path)
    assert doc.format == fmt
    assert doc.pages is None


def test_office_files_and_images(tmp_path: Path) -> None:
    assert load_document(_zip(tmp_path / "a.docx", "word/document.xml")).format == "docx"
    assert load_document(_zip(tmp_path / "a.xlsx", "xl/workbook.xml")).format == "xlsx"
    Image.new("RGB", (10, 10)).save(tmp_path / "a.jpg")
    assert load_document(tmp_path / "a.jpg").format == "jpeg"
    # the name lies; the content decides
    Image.new("RGB", (10, 10)).save(tmp_path / "b.png")
    (tmp_path / "b.png").rename(tmp_path / "report.pdf")
    assert load_document(tmp_path / "report.pdf").format == "png"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.7\nnot a pdf at all", "damaged PDF"),
        (b"\x00\x01\x02\x03binary", "unrecognised format"),
        (b"PK\x03\x04broken zip", "damaged ZIP"),
    ],
)
def test_bad_documents(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=message):
        load_document(path)
