"""``pagestream submit | text | show | ls | pages | search | delete``."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from pagestream.cli._common import api_client, api_session, fail
from pagestream.client import ApiClient, ApiClientError
from pagestream.engine_names import ENGINE_NAMES
from pagestream.exitcodes import ExitCode


def wait_with_progress(client: ApiClient, doc: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Wait for a document, showing a page progress bar on a terminal."""
    bar = _bar(doc.get("page_count") or 1, (doc.get("filename") or doc["id"])[:30], "page")

    def update(d: dict[str, Any]) -> None:
        bar.total = d.get("page_count") or bar.total
        bar.n = d.get("pages_done", 0) + d.get("pages_failed", 0)
        bar.refresh()

    try:
        return client.wait(doc["id"], timeout, on_progress=update)
    finally:
        bar.close()


#: an upload's outcome: the document's view, or why it was not accepted
_Submitted = tuple[dict[str, Any] | None, ApiClientError | None]


def _submit_all(
    client: ApiClient, files: Sequence[Path], concurrency: int, **options: Any
) -> list[_Submitted]:
    """Upload ``files`` with up to ``concurrency`` requests in flight; results in the order of ``files``.

    The pipeline works on documents in parallel, so a batch is uploaded in parallel too: one
    upload at a time leaves ingest waiting on each round trip (and on this client's own work).
    """
    bar = _bar(len(files), "uploading", "file")

    def one(path: Path) -> _Submitted:
        try:
            return client.submit(path, **options), None
        except ApiClientError as e:
            return None, e
        finally:
            bar.update(1)

    try:
        if concurrency == 1 or len(files) == 1:
            return [one(p) for p in files]
        with ThreadPoolExecutor(
            max_workers=min(concurrency, len(files)), thread_name_prefix="submit"
        ) as pool:
            return list(pool.map(one, files))
    finally:
        bar.close()


def _bar(total: int, desc: str, unit: str) -> Any:
    """A progress bar on stderr when it is a terminal (nothing otherwise: stdout stays the results)."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=not sys.stderr.isatty()
    )


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
    "--concurrency",
    "-j",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Uploads in flight at once.",
)
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
    concurrency: int,
    timeout: float,
) -> None:
    """Upload FILES (PDFs or images) for OCR, several at once; progress on stderr."""
    failed = 0
    with api_client() as client:
        # submit everything first, so the pipeline works on all files at once; then wait
        results = _submit_all(client, files, concurrency, password=password, force_ocr=force_ocr, force=force)
        if wait:
            results = _wait_for(client, results, timeout)
        for path, (doc, error) in zip(files, results, strict=True):
            if doc is None or error is not None:
                failed += 1
                if as_json:
                    click.echo(
                        json.dumps(
                            {"file": str(path), "error": str(error), "status_code": error and error.status}
                        )
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


def _wait_for(client: ApiClient, results: list[_Submitted], timeout: float) -> list[_Submitted]:
    """Each accepted document's final view: one document with a page bar, several with a document bar."""
    accepted = [doc for doc, _ in results if doc is not None]
    if len(accepted) == 1:
        try:
            final = {accepted[0]["id"]: wait_with_progress(client, accepted[0], timeout)}
        except ApiClientError as e:
            return [(None, e) if doc is not None else (doc, error) for doc, error in results]
    else:
        bar = _bar(len(accepted), "processing", "doc")
        try:
            final = client.wait_all([d["id"] for d in accepted], timeout, on_final=lambda _: bar.update(1))
        finally:
            bar.close()
    out: list[_Submitted] = []
    for doc, error in results:
        if doc is None:
            out.append((None, error))
        elif doc["id"] in final:
            out.append((final[doc["id"]], None))
        else:
            out.append((None, ApiClientError(f"document {doc['id']} not final after {timeout:.0f} s")))
    return out


@click.command()
@click.argument("document_id")
def text(document_id: str) -> None:
    """Print a document's text (pages separated by form feeds)."""
    with api_session() as client:
        click.echo(client.text(document_id))


@click.command()
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True)
def show(document_id: str, as_json: bool) -> None:
    """Show a document's status, progress, errors and title-block fields."""
    with api_session() as client:
        doc = client.document(document_id)
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
    with api_session() as client:
        page = client.documents(status=status, limit=limit)
    for d in page["items"]:
        click.echo(
            f"{d['id']}  {d['status']:<10} {d['pages_done']}/{d['page_count'] or '?'}  {d.get('filename') or ''}"
        )


@click.command()
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True)
def pages(document_id: str, as_json: bool) -> None:
    """List a document's pages: status, source, engine, confidence, title block, errors."""
    with api_session() as client:
        body = client.pages(document_id)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    for p in body["pages"]:
        conf = f"{p['confidence']:.0f}%" if p.get("confidence") is not None else "-"
        source, engine = p.get("source") or "-", p.get("engine") or "-"
        line = f"{p['page_number']:>4}  {p['status']:<9} {source:<10} {engine:<10} {conf:>4}"
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
    with api_session() as client:
        body = client.search(query, limit=limit)
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
