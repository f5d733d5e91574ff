"""Build the whitepaper PDF: ``docs/whitepaper.md`` -> HTML (Python-Markdown) -> PDF (WeasyPrint).

    python scripts/build_whitepaper.py                       # writes docs/whitepaper.pdf (git-ignored)
    python scripts/build_whitepaper.py --out /tmp/wp.pdf --html /tmp/wp.html

WeasyPrint is the engine the clinician report already uses (it needs Pango: ``make system-deps``).
The PDF is git-ignored: it is rebuilt from the Markdown, which is the one source (the docs site renders the
same file).  The PDF is written to a temporary file next to the target and renamed, so a failed build never
leaves a half-written PDF.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "docs" / "whitepaper.md"
DEFAULT_OUT = REPO / "docs" / "whitepaper.pdf"

CSS = """
@page { size: A4; margin: 18mm 16mm 20mm 16mm;
        @bottom-center { content: "lungcad whitepaper - page " counter(page) " of " counter(pages);
                         font-family: "DejaVu Sans", sans-serif; font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9.5pt; line-height: 1.4; color: #111; }
h1 { font-size: 17pt; margin: 0 0 6pt 0; }
h2 { font-size: 13pt; margin: 16pt 0 4pt 0; border-bottom: 1px solid #999; page-break-after: avoid; }
h3 { font-size: 11pt; margin: 12pt 0 3pt 0; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 6pt 0; font-size: 7.5pt; page-break-inside: auto; }
th, td { border: 1px solid #bbb; padding: 2pt 3pt; vertical-align: top; text-align: left; }
th { background: #eee; }
tr { page-break-inside: avoid; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 85%; overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: 5pt; font-size: 7pt; white-space: pre-wrap; page-break-inside: avoid; }
pre code { font-size: 100%; }
"""


def markdown_to_html(text: str) -> str:
    """The whitepaper's Markdown as a standalone HTML document (tables, fenced code, heading ids)."""
    import markdown

    body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lungcad whitepaper</title>'
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def build(source: Path = SOURCE, out: Path = DEFAULT_OUT, html_out: Path | None = None) -> Path:
    """Render ``source`` to the PDF ``out`` (and the HTML to ``html_out`` when given); returns ``out``."""
    from weasyprint import HTML

    html = markdown_to_html(source.read_text(encoding="utf-8"))
    if html_out is not None:
        html_out.write_text(html, encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    HTML(string=html, base_url=str(source.parent)).write_pdf(tmp)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the Markdown (docs/whitepaper.md)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PDF to write")
    parser.add_argument("--html", type=Path, default=None, help="also write the intermediate HTML here")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"error: {args.source} does not exist", file=sys.stderr)
        return 2
    print(f"wrote {build(args.source, args.out, args.html)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
