"""Generate (``--write``) or check (``--check``) the JSON Schema files in ``schemas/``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pagestream.events.models import ALL_EVENTS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def render_all() -> dict[str, str]:
    """File name → JSON Schema text for every event model."""
    out: dict[str, str] = {}
    for model in ALL_EVENTS:
        schema = model.model_json_schema()
        schema["$id"] = f"https://pagestream.dev/schemas/{model.event_type}.json"
        schema["x-event-type"] = model.event_type
        schema["x-topic"] = "pagestream." + model.event_type
        out[f"{model.event_type}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    rendered = render_all()
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
