"""The JSON Schema files in ``schemas/``: generate (``--write``), or check (the default).

``schemas/<event-type>.json`` (e.g. ``document.committed.v1.json``) is the published schema of
one event version. The check fails when a file is stale, and when the schema generated from the
model is not compatible (``pagestream.events.compat``) with the committed file *and* with every
earlier committed revision of it in git history; ``--write`` refuses to overwrite a version
incompatibly. A breaking change needs a new version: a new model ``….v2`` beside the old one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pagestream.events.compat import Incompatibility, check_compatible
from pagestream.events.models import ALL_EVENTS
from pagestream.events.topics import ALL_TOPICS, topic_for

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
RETRY_SUFFIX = ".retry"
DLQ_SUFFIX = ".dlq"


def render_schema(model: Any) -> dict[str, Any]:
    """The published JSON Schema of one event model (the record value: the event's JSON data)."""
    schema: dict[str, Any] = model.model_json_schema()
    schema["$id"] = f"https://pagestream.dev/schemas/{model.event_type}.json"
    schema["x-event-type"] = model.event_type
    schema["x-topic"] = topic_for(model.event_type)
    return schema


def dumps(schema: dict[str, Any]) -> str:
    """The committed file's text (stable: sorted keys, two-space indent, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    """File name → JSON Schema text for every event model."""
    return {f"{model.event_type}.json": dumps(render_schema(model)) for model in ALL_EVENTS}


def topic_schemas(topics: tuple[str, ...] = ALL_TOPICS) -> dict[str, dict[str, Any]]:
    """Topic → JSON Schema of its record values, for every topic that carries exactly one event type.

    ``pagestream.<event-type>`` and its ``….retry`` topic carry that event; dead-letter topics
    (``….dlq``) carry whatever was given up on, so they get no schema, nor do topics of no event
    (``pagestream.cdc.heartbeat``).
    """
    by_topic = {topic_for(m.event_type): render_schema(m) for m in ALL_EVENTS}
    out = dict(by_topic)
    for topic in topics:
        if topic.endswith(DLQ_SUFFIX):
            continue
        base = topic.removesuffix(RETRY_SUFFIX)
        if base in by_topic:
            out[topic] = by_topic[base]
    return out


def committed_revisions(path: Path) -> list[tuple[str, str]]:
    """``(revision, text)`` of ``path`` in every git commit that touched it, newest first; [] outside git."""
    try:
        cwd = path.parent
        prefix = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--show-prefix"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        rel = prefix + path.name
        revs = subprocess.run(
            ["git", "-C", str(cwd), "log", "--format=%H", "--", path.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
        out = []
        for rev in revs:
            shown = subprocess.run(
                ["git", "-C", str(cwd), "show", f"{rev}:{rel}"], capture_output=True, text=True, timeout=30
            )
            if shown.returncode == 0:  # absent in a commit that deleted it
                out.append((rev[:12], shown.stdout))
        return out
    except (OSError, subprocess.SubprocessError):
        return []


def baselines(
    name: str, schema_dir: Path = SCHEMA_DIR, *, history: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """The schemas a regenerated ``name`` must stay compatible with: the file on disk and its git history."""
    path = schema_dir / name
    texts: list[tuple[str, str]] = []
    if path.exists():
        texts.append((str(path), path.read_text()))
    if history:
        texts += [(f"{rev}:{path.name}", text) for rev, text in committed_revisions(path)]
    out, seen = [], set()
    for label, text in texts:
        if text in seen:
            continue
        seen.add(text)
        try:
            out.append((label, json.loads(text)))
        except ValueError:
            continue  # a broken revision is no contract anyone could have relied on
    return out


def incompatibilities(
    rendered: dict[str, str], schema_dir: Path = SCHEMA_DIR, *, history: bool = True
) -> dict[str, list[tuple[str, Incompatibility]]]:
    """File name → (baseline, incompatibility) for every rendered schema that breaks a baseline."""
    out: dict[str, list[tuple[str, Incompatibility]]] = {}
    for name, text in rendered.items():
        new = json.loads(text)
        for label, old in baselines(name, schema_dir, history=history):
            for problem in check_compatible(old, new):
                out.setdefault(name, []).append((label, problem))
    return out


def _report(problems: dict[str, list[tuple[str, Incompatibility]]]) -> str:
    lines = []
    for name, items in sorted(problems.items()):
        lines.append(f"{name}: not backward compatible within its version:")
        lines += [f"  - {p}  [vs {label}]" for label, p in items]
    lines.append(
        "Within a version only optional fields may be added. Publish a new version instead: "
        "a new model (e.g. DocumentCommittedV2, event_type 'document.committed.v2') beside the old one "
        "(see docs/schemas.md)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="regenerate the files (compatible changes only)")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    parser.add_argument(
        "--no-history", action="store_true", help="compare with the files on disk only, not git history"
    )
    args = parser.parse_args(argv)
    rendered = render_all()
    problems = incompatibilities(rendered, args.dir, history=not args.no_history)
    if problems:
        print(_report(problems), file=sys.stderr)
        if args.write:
            print("schemas/ left unchanged.", file=sys.stderr)
        return 1
    if args.write:
        args.dir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (args.dir / name).write_text(text)
        print(f"wrote {len(rendered)} schemas to {args.dir}")
        return 0
    stale = [n for n, t in rendered.items() if not (args.dir / n).exists() or (args.dir / n).read_text() != t]
    if stale:
        print("schemas out of date (run `make schemas`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
