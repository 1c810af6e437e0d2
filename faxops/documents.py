"""Documents: read, fingerprint, detect the format from the content, count pages.

Formats are detected from the bytes, not the file name, because a provider will judge the bytes: a
``report.pdf`` that is really a Word file must fail validation, not the send.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from faxops.domain import Document

#: names used throughout faxops (provider ``document_formats`` refer to these)
FORMATS = ("pdf", "tiff", "jpeg", "png", "gif", "doc", "docx", "xls", "xlsx", "ps", "pcl", "html", "txt")


class DocumentError(Exception):
    """A document that cannot be used; the message says why (the caller adds file and line)."""


def detect_format(head: bytes, path: Path) -> str:
    """The format of a file from its first bytes (and, for ZIP-based Office files, its members)."""
    # By content, never by extension: providers render by content too, and a report.pdf that is really a Word file
    # would otherwise be accepted here and refused (or rendered wrong) by the provider mid-run.
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"%!PS"):
        return "ps"
    if head.startswith(b"\x1bE") or head.startswith(b"\x1b%-12345X"):
        return "pcl"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        # OLE2 container: legacy Word or Excel; the extension is the only cheap tell.
        return "xls" if path.suffix.lower() in (".xls", ".xlt") else "doc"
    if head.startswith(b"PK\x03\x04"):
        try:
            # Only the member names are read, never the contents: a ZIP bomb costs nothing here.
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise DocumentError(f"damaged ZIP/Office file: {exc}") from None
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise DocumentError("a ZIP archive that is neither a Word (docx) nor an Excel (xlsx) file")
    sample = head.lstrip(b"\xef\xbb\xbf").lstrip()
    lowered = sample[:64].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "txt"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut by the end of the sample is still text.
            if exc.start >= len(head) - 3:
                return "txt"
    raise DocumentError(
        "unrecognised format (faxops reads PDF, TIFF, JPEG, PNG, GIF, DOC(X), XLS(X), PS, PCL, HTML, TXT)"
    )


def count_pages(path: Path, fmt: str) -> int | None:
    """Pages of a PDF or a multi-page TIFF; None for formats that need rendering to tell."""
    if fmt == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(path)
            # Even with an empty user password: providers' renderers refuse or blank encrypted PDFs, and finding out
            # after the campaign has started would fail every recipient.
            if reader.is_encrypted:
                raise DocumentError("the PDF is encrypted; fax providers cannot render it")
            return len(reader.pages)
        except (PdfReadError, ValueError, KeyError, OSError) as exc:
            raise DocumentError(f"damaged PDF: {exc}") from None
    # Images are counted from their headers; Office and HTML files return None, and the plan says their pages are
    # unknown rather than guessing a cost.
    if fmt in ("tiff", "gif", "png", "jpeg"):
        return _image_pages(path)
    return None


#: Most pixels on one page. A fine-mode A4 fax page is about 1728 x 2300 (4 Mpx); even 600 dpi A3 is
#: 70 Mpx. Anything larger is a mistake or a decompression bomb (a few KB that unpack to gigabytes).
MAX_PAGE_PIXELS = 80_000_000


def _image_pages(path: Path) -> int:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns at its own limit and raises at twice it; we decide with our limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                frames = int(getattr(image, "n_frames", 1))
                width, height = image.size
    except Image.DecompressionBombError:
        raise DocumentError(
            f"the image is far larger than a fax page (over {MAX_PAGE_PIXELS:,} pixels): refusing to decode it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DocumentError(f"damaged image: {exc}") from None
    if width * height > MAX_PAGE_PIXELS:
        raise DocumentError(
            f"the image is {width:,} x {height:,} pixels, far larger than a fax page "
            f"(at most {MAX_PAGE_PIXELS:,} pixels): refusing to decode it"
        )
    return frames


def load_document(path: Path, name: str | None = None) -> Document:
    """Read one document. Raises ``DocumentError`` (or ``OSError`` for missing/unreadable files)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        # One pass over the file: the digest covers every byte (the saved plan and the lockfile compare it), and the
        # head that decides the format is taken from the same read.
        head = fh.read(8192)
        digest.update(head)
        size += len(head)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    if size == 0:
        raise DocumentError("the file is empty")
    fmt = detect_format(head, path)
    pages = count_pages(path, fmt)
    # A PDF with no pages is valid to pypdf, but there is nothing to fax: every send would fail at the provider.
    if pages == 0:
        raise DocumentError("the document has no pages")
    return Document(
        path=path,
        name=name or path.name,
        format=fmt,
        size=size,
        sha256=digest.hexdigest(),
        pages=pages,
    )


def first_page_text(document: Document) -> str | None:
    """The text of a document's first page, where it can be read without rendering (PDF, TXT, HTML)."""
    if document.format == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(document.path)
            # None (unknown) rather than an exception on a damaged page: the opt-out check then warns that it could
            # not look, instead of stopping a transactional campaign that does not need the text.
            return reader.pages[0].extract_text() if reader.pages else ""
        except (PdfReadError, ValueError, KeyError, OSError, IndexError):
            return None
    if document.format in ("txt", "html"):
        try:
            return document.path.read_text(encoding="utf-8", errors="replace")[:20_000]
        except OSError:
            return None
    return None
