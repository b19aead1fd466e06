"""``pagestream dlq ls | show | redrive``: inspect dead-letter topics and send records back.

These commands talk to the broker directly (``KAFKA_BOOTSTRAP_SERVERS``, or the running local
stack's broker), so they work when the API is down too.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from pagestream.cli._common import cli_settings
from pagestream.errors import PagestreamError
from pagestream.events.topics import DLQ_TOPICS, PAGE_OCR_REQUESTED_DLQ

TOPIC_HELP = "a dead-letter topic (see `pagestream dlq ls`)"


def _topic(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in DLQ_TOPICS:
        return value
    raise click.BadParameter(f"{value!r} is not a dead-letter topic; one of: {', '.join(DLQ_TOPICS)}")


def _queues() -> Any:
    from pagestream.kafka.dlq import DeadLetterQueues

    return DeadLetterQueues(cli_settings())


def _broker_error(e: PagestreamError) -> click.ClickException:
    return click.ClickException(f"{e} (is the broker reachable? KAFKA_BOOTSTRAP_SERVERS or `pagestream up`)")


@click.group()
def dlq() -> None:
    """Dead letters: records the pipeline gave up on, with why; inspect them and redrive them."""


@dlq.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dlq_ls(as_json: bool) -> None:
    """Each dead-letter topic: records held (depth) and records not yet redriven (pending)."""
    try:
        with _queues() as q:
            topics = q.topics()
    except PagestreamError as e:
        raise _broker_error(e) from e
    if as_json:
        click.echo(
            json.dumps([{"topic": t.topic, "depth": t.depth, "pending": t.pending} for t in topics], indent=2)
        )
        return
    width = max(len(t.topic) for t in topics)
    click.echo(f"{'TOPIC':<{width}}  {'DEPTH':>7}  {'PENDING':>7}")
    for t in topics:
        click.echo(f"{t.topic:<{width}}  {t.depth:>7}  {t.pending:>7}")


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "?"


@dlq.command("show")
@click.argument("topic", callback=_topic, metavar="TOPIC")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="At most this many records, oldest first.",
)
@click.option("--partition", type=click.IntRange(0), default=None, help="Only this partition.")
@click.option(
    "--offset",
    "start_offset",
    type=click.IntRange(0),
    default=None,
    help="Start each partition at this offset.",
)
@click.option("--pending", is_flag=True, help="Only records not yet redriven.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (one object per record, with the full value)."
)
def dlq_show(
    topic: str, limit: int, partition: int | None, start_offset: int | None, pending: bool, as_json: bool
) -> None:
    """Records of a dead-letter TOPIC: why each was given up on, where from, and what it held."""
    try:
        with _queues() as q:
            records = q.read(
                topic, limit=limit, partition=partition, start_offset=start_offset, pending_only=pending
            )
    except PagestreamError as e:
        raise _broker_error(e) from e
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo(f"{topic}: no records" + (" pending" if pending else ""))
        return
    for r in records:
        state = "pending" if r.pending else "redriven"
        click.echo(click.style(f"{r.position}", bold=True) + f"  {_when(r.timestamp_ms)}  {state}")
        click.echo(f"  reason:      {r.reason or '?'}" + (f" ({r.error_class})" if r.error_class else ""))
        if r.attempts is not None:
            click.echo(f"  attempts:    {r.attempts}")
        click.echo(f"  detail:      {r.detail or ''}")
        click.echo(
            f"  source:      {r.source or '?'}"
            + (
                f" → redrive to {r.redrive_topic}"
                if r.redrive_topic
                else "  (cannot be redriven: origin unknown)"
            )
        )
        click.echo(f"  failed at:   {r.failed_at or '?'}")
        click.echo(f"  key:         {r.key}")
        for name, value in r.headers:
            click.echo(f"  header:      {name}={value}")
        click.echo(f"  value:       ({r.value_bytes} bytes) {r.value_preview}")
        click.echo("")


def _describe(s: Any) -> str:
    lines = [f"{s.topic}: {s.scanned} pending record(s) read"]
    if s.reasons:
        lines.append("  by reason:   " + ", ".join(f"{k or '?'} {v}" for k, v in sorted(s.reasons.items())))
    verb = "would be redriven" if s.dry_run else "redriven"
    lines.append(
        f"  {verb}: {s.redriven}"
        + (
            ""
            if not s.targets
            else " (" + ", ".join(f"{v} to {k}" for k, v in sorted(s.targets.items())) + ")"
        )
    )
    if s.passed_over:
        lines.append(
            f"  passed over (other reasons, {'would be' if s.dry_run else 'now'} no longer pending): "
            f"{s.passed_over}"
        )
    if s.skipped:
        lines.append(
            f"  skipped (origin unknown, {'would stay' if s.dry_run else 'stay'} in the DLQ): {len(s.skipped)}"
        )
        lines += [f"    [{k.partition}]@{k.offset}: {k.why}" for k in s.skipped[:20]]
        if len(s.skipped) > 20:
            lines.append(f"    … and {len(s.skipped) - 20} more")
    return "\n".join(lines)


@dlq.command("redrive")
@click.argument("topic", callback=_topic, metavar="TOPIC")
@click.option(
    "--reason",
    default=None,
    help="Only records dead-lettered for this reason; the other pending records "
    "are passed over (no longer pending).",
)
@click.option("--dry-run", is_flag=True, help="Read and report; send and mark nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def dlq_redrive(topic: str, reason: str | None, dry_run: bool, yes: bool) -> None:
    """Send the pending records of a dead-letter TOPIC back to the topics they came from.

    Each record goes back with its key, value and original headers, plus a pagestream_redriven_from
    header; a record is redriven once (the pagestream-dlq-redrive consumer group remembers how far
    redrive got). To start a document over instead, use `pagestream reprocess ID`.
    """
    from tqdm import tqdm

    try:
        with _queues() as q:
            if not dry_run and not yes:
                preview = q.redrive(topic, reason=reason, dry_run=True)
                click.echo(_describe(preview))
                if not preview.scanned:
                    return
                click.confirm("Redrive now?", abort=True)
            pending = sum(t.pending for t in q.topics([topic]))
            with tqdm(
                total=pending or None,
                desc="redrive",
                unit="record",
                file=sys.stderr,
                leave=False,
                disable=not sys.stderr.isatty(),
            ) as bar:
                summary = q.redrive(topic, reason=reason, dry_run=dry_run, progress=bar.update)
    except PagestreamError as e:
        raise _broker_error(e) from e
    click.echo(_describe(summary))
    if topic == PAGE_OCR_REQUESTED_DLQ and summary.redriven:
        click.echo(
            "note: a page that already used up its attempts fails again at once; "
            "`pagestream reprocess DOCUMENT_ID` starts its document afresh"
        )


def register(group: click.Group) -> None:
    group.add_command(dlq)
