"""``pagestream demo``: the whole pipeline on the embedded stack, on the example documents."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pagestream.client import ApiClient, ApiClientError

EXAMPLE_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _examples(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES)


@click.command()
@click.option(
    "--examples",
    "examples_dir",
    default=Path("examples"),
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--state-dir",
    default=Path(".pagestream"),
    show_default=True,
    envvar="PAGESTREAM_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--lines", default=6, show_default=True, help="Lines of text to show per document.")
@click.option("--timeout", default=600.0, show_default=True)
@click.option(
    "--pdf-dir",
    default=Path("demo-output"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the searchable PDF is written.",
)
def demo(examples_dir: Path, state_dir: Path, lines: int, timeout: float, pdf_dir: Path) -> None:
    """Start the embedded stack, OCR the example documents, print the results, stop the stack."""
    from pagestream.cli.stack import _stop_supervisor, _up_detached
    from pagestream.stack.state import StackState

    state_dir = state_dir.absolute()
    files = _examples(examples_dir)
    if not files:
        raise click.ClickException(f"no example documents in {examples_dir}; run `make examples`")
    running = StackState.read(state_dir)
    started_here = running is None
    if started_here:
        click.echo(f"starting the embedded stack in {state_dir} …", err=True)
        _up_detached(state_dir, 240.0)
    state = StackState.read(state_dir)
    if state is None:
        raise click.ClickException(f"the embedded stack in {state_dir} did not come up (no state file)")
    t0 = time.monotonic()
    try:
        with ApiClient(state.api_url) as client:
            docs = []
            for path in files:
                doc = client.submit(path, force=True)
                click.echo(f"submitted {path.name}: {doc['id']} ({doc['page_count']} pages)")
                docs.append((path, doc))
            finals = []
            for path, doc in docs:
                final = client.wait(doc["id"], timeout)
                _print_document(client, path, final, lines)
                finals.append((path, final))
            click.echo(f"\n{len(docs)} documents in {time.monotonic() - t0:.1f} s (after the stack was up)")
            _write_searchable_pdf(client, finals, pdf_dir)
        if started_here:
            click.echo(
                f"web viewer: {state.api_url}/ui while the stack runs; this demo stops it now, "
                "so run `pagestream up --detach` and open /ui on the API URL it prints"
            )
        else:
            click.echo(f"web viewer: {state.api_url}/ui")
    except ApiClientError as e:
        raise click.ClickException(f"{e}; service logs are in {state_dir / 'logs'}") from e
    finally:
        if started_here:
            click.echo("stopping the embedded stack …", err=True)
            _stop_supervisor(state.supervisor_pid, 60.0)


def _write_searchable_pdf(client: ApiClient, finals: list[tuple[Path, dict]], pdf_dir: Path) -> None:
    """Write one searchable PDF: of a scanned example if there is one (its text layer is new)."""
    done = [(p, d) for p, d in finals if d["status"] in ("completed", "partial")]
    if not done:
        return
    path, doc = sorted(done, key=lambda pd: ("scan" not in pd[0].name.lower(), pd[0].name))[0]
    pdf = client._request("GET", f"/v1/documents/{doc['id']}/pdf").content
    pdf_dir.mkdir(parents=True, exist_ok=True)
    out = pdf_dir / f"{path.stem}.searchable.pdf"
    out.write_bytes(pdf)
    click.echo(
        f"searchable PDF of {path.name}: {out} ({len(pdf)} bytes; select or search its text in any viewer)"
    )


def _print_document(client: ApiClient, path: Path, doc: dict, lines: int) -> None:
    click.echo("")
    click.secho(
        f"== {path.name}  [{doc['status']}]  {doc['pages_done']}/{doc['page_count']} pages", bold=True
    )
    if doc.get("error"):
        click.echo(f"   error: {doc['error']}")
    for tb in doc.get("title_blocks", []):
        click.echo(
            f"   title block (page {tb['page_number']}): sheet number {tb['sheet_number']!r}, "
            f"sheet title {tb['sheet_title']!r}, scale {tb['scale']!r}"
        )
    text = client.text(doc["id"])
    shown = [ln for ln in text.replace("\f", "\n").splitlines() if ln.strip()][:lines]
    for ln in shown:
        click.echo(f"   | {ln}")
