"""``pagestream submit | text | show | ls | pages | search | delete``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from pagestream.cli._common import api_client, fail
from pagestream.client import ApiClient, ApiClientError
from pagestream.engine_names import ENGINE_NAMES
from pagestream.exitcodes import ExitCode


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="page", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()
    )


def wait_with_progress(client: ApiClient, doc: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Wait for a document, showing a page progress bar on a terminal."""
    bar = _progress_bar(doc.get("page_count") or 1, (doc.get("filename") or doc["id"])[:30])

    def update(d: dict[str, Any]) -> None:
        bar.total = d.get("page_count") or bar.total
        bar.n = d.get("pages_done", 0) + d.get("pages_failed", 0)
        bar.refresh()

    try:
        return client.wait(doc["id"], timeout, on_progress=update)
    finally:
        bar.close()


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--wait", is_flag=True, help="Wait until each document is completed, partial or failed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per document (id, status, …).")
@click.option("--password", default=None, help="Password of encrypted PDFs.")
@click.option("--force-ocr", is_flag=True, help="OCR even pages that have a text layer.")
@click.option("--force", is_flag=True, help="Process identical bytes again as a new document.")
@click.option(
    "--timeout", default=1800.0, show_default=True, help="Seconds to wait per document with --wait."
)
def submit(
    files: tuple[Path, ...],
    wait: bool,
    as_json: bool,
    password: str | None,
    force_ocr: bool,
    force: bool,
    timeout: float,
) -> None:
    """Upload FILES (PDFs or images) for OCR."""
    failed = 0
    with api_client() as client:
        # submit everything first, so the pipeline works on all files at once; then wait
        submitted: list[tuple[Path, dict[str, Any] | None, ApiClientError | None]] = []
        for path in files:
            try:
                submitted.append(
                    (path, client.submit(path, password=password, force_ocr=force_ocr, force=force), None)
                )
            except ApiClientError as e:
                submitted.append((path, None, e))
        for path, doc, error in submitted:
            if doc is not None and wait:
                try:
                    doc = wait_with_progress(client, doc, timeout)
                except ApiClientError as e:
                    doc, error = None, e
            if doc is None:
                assert error is not None
                failed += 1
                if as_json:
                    click.echo(
                        json.dumps({"file": str(path), "error": str(error), "status_code": error.status})
                    )
                else:
                    click.echo(f"{path}: rejected: {error}", err=True)
                continue
            if doc["status"] == "failed":
                failed += 1
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "file": str(path),
                            **{
                                k: doc.get(k)
                                for k in (
                                    "id",
                                    "status",
                                    "page_count",
                                    "pages_done",
                                    "pages_failed",
                                    "error",
                                    "status_url",
                                )
                            },
                        }
                    )
                )
            else:
                extra = f" ({doc['error']})" if doc.get("error") else ""
                click.echo(f"{doc['id']}  {doc['status']:<10} {path}{extra}")
    if failed:
        sys.exit(ExitCode.FAILED)


@click.command()
@click.argument("document_id")
def text(document_id: str) -> None:
    """Print a document's text (pages separated by form feeds)."""
    with api_client() as client:
        try:
            click.echo(client.text(document_id))
        except ApiClientError as e:
            raise fail(e) from e


@click.command()
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True)
def show(document_id: str, as_json: bool) -> None:
    """Show a document's status, progress, errors and title-block fields."""
    with api_client() as client:
        try:
            doc = client.document(document_id)
        except ApiClientError as e:
            raise fail(e) from e
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{doc['id']}  {doc['status']}  {doc.get('filename') or ''}")
    click.echo(f"  pages: {doc['pages_done']} done, {doc['pages_failed']} failed of {doc['page_count']}")
    if doc.get("error"):
        click.echo(f"  error: {doc['error']}")
    for pe in doc.get("page_errors", []):
        click.echo(f"  page {pe['page_number']}: {pe['error_reason']}: {pe['error_detail']}")
    for tb in doc.get("title_blocks", []):
        click.echo(
            f"  page {tb['page_number']}: sheet {tb['sheet_number']} — {tb['sheet_title']} — scale {tb['scale']}"
        )


@click.command(name="ls")
@click.option("--status", default=None)
@click.option("--limit", default=20, show_default=True)
def ls_command(status: str | None, limit: int) -> None:
    """List documents, newest first."""
    with api_client() as client:
        try:
            page = client.documents(status=status, limit=limit)
        except ApiClientError as e:
            raise fail(e) from e
    for d in page["items"]:
        click.echo(
            f"{d['id']}  {d['status']:<10} {d['pages_done']}/{d['page_count'] or '?'}  {d.get('filename') or ''}"
        )


@click.command()
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True)
def pages(document_id: str, as_json: bool) -> None:
    """List a document's pages: status, source, engine, confidence, title block, errors."""
    with api_client() as client:
        try:
            body = client.pages(document_id)
        except ApiClientError as e:
            raise fail(e) from e
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    for p in body["pages"]:
        conf = f"{p['confidence']:.0f}%" if p.get("confidence") is not None else "-"
        line = f"{p['page_number']:>4}  {p['status']:<9} {p.get('source') or '-':<10} {p.get('engine') or '-':<10} {conf:>4}"
        tb = p.get("title_block") or {}
        if any(tb.values()):
            line += f"  sheet {tb.get('sheet_number') or '?'} — {tb.get('sheet_title') or '?'}"
        if p.get("error"):
            line += f"  {p['error']['reason']}: {p['error']['detail']}"
        click.echo(line)


def _terminal_snippet(snippet: str) -> str:
    """An HTML snippet from the API as terminal text, matches in bold."""
    import html

    marked = snippet.replace("<mark>", "\x00").replace("</mark>", "\x01")
    plain = html.unescape(re.sub(r"\s+", " ", marked))
    return plain.replace("\x00", click.style("", bold=True, reset=False)).replace(
        "\x01", click.style("", reset=True)
    )


@click.command()
@click.argument("query")
@click.option("--limit", default=10, show_default=True, help="At most this many documents.")
@click.option("--json", "as_json", is_flag=True)
def search(query: str, limit: int, as_json: bool) -> None:
    """Full-text search over recognized pages (words, "a phrase", or, -word)."""
    with api_client() as client:
        try:
            body = client.search(query, limit=limit)
        except ApiClientError as e:
            raise fail(e) from e
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    if not body["items"]:
        click.echo("no matches", err=True)
        return
    for hit in body["items"]:
        click.echo(
            f"{hit['document_id']}  {hit.get('filename') or ''}  ({hit['matching_pages']} matching pages)"
        )
        for p in hit["pages"]:
            click.echo(f"  p.{p['page_number']}: {_terminal_snippet(p['snippet'])}")


@click.command()
@click.argument("document_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(document_ids: tuple[str, ...], yes: bool) -> None:
    """Delete documents, their pages and their stored bytes."""
    if not yes:
        click.confirm(f"Delete {len(document_ids)} document(s) and their OCR results?", abort=True)
    with api_client() as client:
        for did in document_ids:
            try:
                client.delete(did)
            except ApiClientError as e:
                raise fail(e) from e
            click.echo(f"{did}  deleted")


@click.command()
@click.argument("document_ids", nargs=-1, required=True)
@click.option(
    "--engine",
    type=click.Choice(ENGINE_NAMES),
    default=None,
    help="Use this engine for the new run.",
)
@click.option("--languages", default=None, help="Tesseract languages for the new run, e.g. eng+deu.")
@click.option("--force-ocr", is_flag=True, default=None, help="OCR even pages that have a text layer.")
@click.option("--wait", is_flag=True, help="Wait until each document is final again.")
@click.option(
    "--timeout", default=1800.0, show_default=True, help="Seconds to wait per document with --wait."
)
def reprocess(
    document_ids: tuple[str, ...],
    engine: str | None,
    languages: str | None,
    force_ocr: bool | None,
    wait: bool,
    timeout: float,
) -> None:
    """OCR documents again from scratch, through the same committed-only path as an upload."""
    with api_client() as client:
        for did in document_ids:
            try:
                out = client.reprocess(did, engine=engine, languages=languages, force_ocr=force_ocr)
                if wait:
                    out = wait_with_progress(client, {"id": did, **out}, timeout)
            except ApiClientError as e:
                raise fail(e) from e
            click.echo(f"{did}  {out['status']}")


def register(group: click.Group) -> None:
    for c in (submit, text, show, ls_command, pages, search, delete, reprocess):
        group.add_command(c)
