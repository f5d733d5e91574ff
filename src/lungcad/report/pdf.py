"""The report's PDF: the report HTML laid out by WeasyPrint (A4, page numbers in the margin boxes).

WeasyPrint needs Pango from the operating system (Debian: ``libpango-1.0-0 libpangoft2-1.0-0
libharfbuzz0b libharfbuzz-subset0``, installed by ``.ci/run`` and ``make system-deps``);
``fonts-dejavu-core`` gives the text face the style sheet asks for.  Without them the import fails
with an ``OSError`` naming the missing library, which is turned into a ``ReportError`` with that fix.
"""

from __future__ import annotations

from pathlib import Path

from lungcad.errors import LungcadError
from lungcad.fileio import atomic_write_bytes

PANGO_FIX = (
    "install the Pango libraries WeasyPrint needs: apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
    "libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core (or `make system-deps`)"
)


class ReportError(LungcadError):
    """The report could not be rendered (a missing system library, an unreadable input)."""


def html_to_pdf(html: str, base_dir: Path) -> bytes:
    """PDF bytes of ``html``; relative image paths resolve against ``base_dir``.

    Raises:
        ReportError: WeasyPrint or its system libraries are missing.
    """
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise ReportError(f"cannot render the PDF report: {exc}", fix=PANGO_FIX) from None
    # a folder URI with a trailing slash: "figures/a.png" then resolves inside base_dir, not beside it
    document = weasyprint.HTML(string=html, base_url=base_dir.resolve().as_uri() + "/").render()
    # Fonts are subset by HarfBuzz (libharfbuzz-subset0): 0.3 s for the LIDC-IDRI-0001 report.  Without
    # it WeasyPrint falls back to fontTools, which took 2/3 of the PDF time (3.2 s of 4.8 s, busy machine).
    return document.write_pdf()


def write_pdf(pdf: bytes, path: Path) -> Path:
    return atomic_write_bytes(path, pdf)
