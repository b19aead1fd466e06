"""``pagestream pdf ID -o out.pdf [--format pdf|hocr|alto] [--page N]``: outputs from the API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pagestream.cli._common import api_client, fail
from pagestream.client import ApiClientError

_SUFFIX = {"pdf": ".pdf", "hocr": ".hocr.html", "alto": ".alto.xml"}


@click.command("pdf")
@click.argument("document_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write ('-' for standard output). Default: <ID>.pdf, <ID>.hocr.html or <ID>.alto.xml.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pdf", "hocr", "alto"]),
    default="pdf",
    show_default=True,
    help="searchable PDF, hOCR (XHTML) or ALTO 4.4 (XML).",
)
@click.option("--page", type=int, default=None, help="Only this page (1-based; hocr and alto).")
def pdf(document_id: str, output: Path | None, fmt: str, page: int | None) -> None:
    """Write a document's searchable PDF (or its hOCR / ALTO) built from the stored OCR result."""
    if page is not None and fmt == "pdf":
        raise click.UsageError(
            "--page works with --format hocr or alto; the PDF is always the whole document"
        )
    with api_client() as client:
        try:
            if fmt == "pdf":
                path = f"/v1/documents/{document_id}/pdf"
            elif page is not None:
                pages = client.pages(document_id)["pages"]
                match = [p for p in pages if p["page_number"] == page]
                if not match:
                    raise click.ClickException(f"document {document_id} has no page {page}")
                path = f"/v1/pages/{match[0]['id']}/export?format={fmt}"
            else:
                path = f"/v1/documents/{document_id}/export?format={fmt}"
            body = client._request("GET", path).content
        except ApiClientError as e:
            raise fail(e) from e
    target = output or Path(f"{document_id}{_SUFFIX[fmt]}")
    if str(target) == "-":
        sys.stdout.buffer.write(body)
        return
    target.write_bytes(body)
    click.echo(f"wrote {target} ({len(body)} bytes)", err=True)


def register(group: click.Group) -> None:
    group.add_command(pdf)
