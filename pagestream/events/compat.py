"""Compatibility of two JSON Schemas of the same event version (pure Python, no validator needed).

Within a version only *optional* fields may be added: a consumer built against the committed
schema must read what a producer built against the new one writes, and the other way round.
Everything else — removing a field, changing its type or constraints, making it required (or no
longer required), adding a required field, changing an enum — needs a new version
(``….v2``), published beside the old one during a migration (docs/schemas.md).

The checker walks both schemas in step (resolving ``$ref`` into each schema's own ``$defs``) and
reports every difference that is not an added optional property. Annotations (``title``,
``description``, ``default``, ``examples``, ``x-*``) may change freely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

#: keywords that describe rather than constrain: changing them changes no record's validity
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$id",
        "$schema",
        "$defs",
        "definitions",
    }
)
#: keywords handled structurally below
STRUCTURAL = frozenset(
    {
        "$ref",
        "type",
        "properties",
        "required",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "enum",
        "const",
        "additionalProperties",
        "prefixItems",
    }
)


@dataclass(frozen=True)
class Incompatibility:
    """One change that breaks readers or writers of the same version."""

    path: str  # where in the event, e.g. ``options.engine`` or ``layout.blocks[].text``
    rule: str  # e.g. ``field removed``
    detail: str

    def __str__(self) -> str:
        return f"{self.path or '(event)'}: {self.rule} ({self.detail})"


def check_compatible(old: Schema, new: Schema) -> list[Incompatibility]:
    """Every incompatible difference from ``old`` (committed) to ``new`` (generated); empty if compatible."""
    return _Walker(old, new).compare(old, new, "")


def is_compatible(old: Schema, new: Schema) -> bool:
    """True when ``new`` only adds optional fields (and annotations) to ``old``."""
    return not check_compatible(old, new)


class _Walker:
    def __init__(self, old_root: Schema, new_root: Schema):
        self._roots = (old_root, new_root)
        self._seen_refs: set[tuple[str, str]] = set()

    # -- resolution -------------------------------------------------------------------------
    def _resolve(self, node: Any, side: int) -> Schema:
        """Follow local ``$ref``s (and single-element ``allOf`` wrappers); siblings are kept."""
        seen: set[str] = set()
        while isinstance(node, dict):
            if "$ref" in node:
                ref = node["$ref"]
                if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
                    return node  # remote or cyclic: compared by the reference itself
                seen.add(ref)
                target: Any = self._roots[side]
                for part in ref[2:].split("/"):
                    target = (
                        target.get(part.replace("~1", "/").replace("~0", "~"), {})
                        if isinstance(target, dict)
                        else {}
                    )
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                node = {**target, **siblings} if isinstance(target, dict) else siblings
                continue
            if (
                list(node.get("allOf", []))
                and len(node["allOf"]) == 1
                and set(node) - ANNOTATIONS == {"allOf"}
            ):
                node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
                continue
            return node
        return {} if node is True else {"not": {}} if node is False else node

    # -- comparison -------------------------------------------------------------------------
    def compare(self, old: Any, new: Any, path: str) -> list[Incompatibility]:
        if isinstance(old, dict) and isinstance(new, dict) and "$ref" in old and "$ref" in new:
            refs = (str(old["$ref"]), str(new["$ref"]))
            if refs in self._seen_refs:  # a shared or recursive model: compared (and reported) once
                return []
            self._seen_refs.add(refs)
        o, n = self._resolve(old, 0), self._resolve(new, 1)
        out: list[Incompatibility] = []

        o_alts, n_alts = _alternatives(o), _alternatives(n)
        if o_alts is not None or n_alts is not None:
            return out + self._compare_alternatives(o, n, o_alts or [o], n_alts or [n], path)

        o_types, n_types = _types(o), _types(n)
        if o_types != n_types:
            out.append(Incompatibility(path, "type changed", f"{_fmt(o_types)} → {_fmt(n_types)}"))
            return out

        out += _compare_enum(o, n, path)
        out += _compare_constraints(o, n, path)
        if "object" in o_types or "properties" in o or "properties" in n:
            out += self._compare_object(o, n, path)
        if "array" in o_types or "items" in o or "items" in n:
            out += self._compare_array(o, n, path)
        return out

    def _compare_object(self, o: Schema, n: Schema, path: str) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        o_props, n_props = o.get("properties", {}), n.get("properties", {})
        o_req, n_req = set(o.get("required", [])), set(n.get("required", []))
        for name in sorted(o_props):
            sub = _join(path, name)
            if name not in n_props:
                out.append(Incompatibility(sub, "field removed", "readers of this version may need it"))
                continue
            if name in o_req and name not in n_req:
                out.append(
                    Incompatibility(
                        sub, "required field made optional", "readers of the committed schema require it"
                    )
                )
            if name not in o_req and name in n_req:
                out.append(
                    Incompatibility(
                        sub,
                        "optional field made required",
                        "records written with the committed schema may lack it",
                    )
                )
            out += self.compare(o_props[name], n_props[name], sub)
        for name in sorted(set(n_props) - set(o_props)):
            if name in n_req:
                out.append(
                    Incompatibility(
                        _join(path, name),
                        "required field added",
                        "records written with the committed schema lack it; add it as optional",
                    )
                )
        for name in sorted(n_req - set(n_props) - o_req):
            out.append(
                Incompatibility(_join(path, name), "required field added", "required without a property")
            )
        o_add, n_add = o.get("additionalProperties", True), n.get("additionalProperties", True)
        if o_add != n_add:
            if isinstance(o_add, dict) or isinstance(n_add, dict):
                out += self.compare(
                    o_add if isinstance(o_add, dict) else {},
                    n_add if isinstance(n_add, dict) else {},
                    _join(path, "*"),
                )
            else:
                out.append(
                    Incompatibility(
                        path, "unknown fields rule changed", f"additionalProperties {o_add} → {n_add}"
                    )
                )
        return out

    def _compare_array(self, o: Schema, n: Schema, path: str) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        if o.get("prefixItems") != n.get("prefixItems"):
            o_p, n_p = o.get("prefixItems", []), n.get("prefixItems", [])
            if len(o_p) != len(n_p):
                out.append(Incompatibility(path + "[]", "tuple length changed", f"{len(o_p)} → {len(n_p)}"))
            for i, (a, b) in enumerate(zip(o_p, n_p, strict=False)):
                out += self.compare(a, b, f"{path}[{i}]")
        if "items" in o or "items" in n:
            out += self.compare(o.get("items", {}), n.get("items", {}), path + "[]")
        return out

    def _compare_alternatives(
        self, o: Schema, n: Schema, o_alts: list[Any], n_alts: list[Any], path: str
    ) -> list[Incompatibility]:
        """``anyOf``/``oneOf``: each committed alternative must still exist, and no new one may appear."""
        out: list[Incompatibility] = []
        o_by = _by_kind([(self._resolve(a, 0), a) for a in o_alts])
        n_by = _by_kind([(self._resolve(a, 1), a) for a in n_alts])
        if set(o_by) != set(n_by):
            out.append(Incompatibility(path, "type changed", f"{_fmt(sorted(o_by))} → {_fmt(sorted(n_by))}"))
            return out
        for kind in sorted(o_by):
            a, b = o_by[kind], n_by[kind]
            if len(a) != len(b):
                out.append(
                    Incompatibility(path, "type changed", f"{len(a)} → {len(b)} alternatives of {kind}")
                )
                continue
            for x, y in zip(a, b, strict=True):
                out += self.compare(x, y, path)
        out += _compare_constraints(o, n, path)
        return out


def _alternatives(s: Schema) -> list[Any] | None:
    for kw in ("anyOf", "oneOf"):
        if kw in s:
            return list(s[kw])
    return None


def _types(s: Schema) -> frozenset[str]:
    t = s.get("type")
    if t is None:
        if "properties" in s:
            return frozenset({"object"})
        if "const" in s or "enum" in s:
            vals = s.get("enum", [s.get("const")])
            return frozenset(_json_type(v) for v in vals)
        return frozenset({"any"})
    types = frozenset([t] if isinstance(t, str) else t)
    if "number" in types and "integer" in types:
        types = types - {"integer"}
    return types


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _kind(s: Schema) -> str:
    if "enum" in s or "const" in s:
        return "enum:" + _fmt(_types(s))
    return _fmt(_types(s))


def _by_kind(alts: list[tuple[Schema, Any]]) -> dict[str, list[Any]]:
    """Alternatives grouped by kind (resolved), keeping the unresolved node for comparison."""
    out: dict[str, list[Any]] = {}
    for resolved, raw in alts:
        out.setdefault(_kind(resolved), []).append(raw)
    return out


def _enum_values(s: Schema) -> list[Any] | None:
    if "enum" in s:
        return list(s["enum"])
    if "const" in s:
        return [s["const"]]
    return None


def _compare_enum(o: Schema, n: Schema, path: str) -> list[Incompatibility]:
    ov, nv = _enum_values(o), _enum_values(n)
    if ov is None and nv is None:
        return []
    if ov is None:
        return [Incompatibility(path, "enum narrowed", f"any value → {nv}")]
    if nv is None:
        return [
            Incompatibility(
                path,
                "enum widened",
                f"{ov} → any value; readers of the committed schema reject the new values",
            )
        ]
    o_set, n_set = {json.dumps(v) for v in ov}, {json.dumps(v) for v in nv}
    out = []
    if o_set - n_set:
        out.append(Incompatibility(path, "enum narrowed", f"removed {sorted(o_set - n_set)}"))
    if n_set - o_set:
        out.append(
            Incompatibility(
                path,
                "enum widened",
                f"added {sorted(n_set - o_set)}; readers of the committed schema reject them",
            )
        )
    return out


def _compare_constraints(o: Schema, n: Schema, path: str) -> list[Incompatibility]:
    """Validation keywords other than the structural ones (minimum, maxLength, pattern, format …)."""
    out = []
    for kw in sorted((set(o) | set(n)) - ANNOTATIONS - STRUCTURAL):
        if kw.startswith("x-"):
            continue
        if o.get(kw) != n.get(kw):
            out.append(Incompatibility(path, "constraint changed", f"{kw}: {o.get(kw)!r} → {n.get(kw)!r}"))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fmt(types: Any) -> str:
    return "|".join(sorted(types))
