"""API keys: only a hash is stored; the key itself is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, update

from pagestream.db import translate_errors
from pagestream.db.schema import api_keys
from pagestream.events.models import utcnow


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str) -> tuple[uuid.UUID, str]:
    """Create a key; returns (id, key). The key cannot be recovered later."""
    key = "ps_" + secrets.token_urlsafe(32)
    kid = uuid.uuid4()
    with translate_errors("create api key"), engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(id=kid, name=name, prefix=key[:10], hash=_hash(key), created_at=utcnow())
        )
    return kid, key


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with translate_errors("list api keys"), engine.connect() as conn:
        rows = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.name,
                api_keys.c.prefix,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
                api_keys.c.active,
            ).order_by(api_keys.c.created_at)
        )
        return [dict(r) for r in rows.mappings().all()]


def revoke_key(engine: Engine, key_id: uuid.UUID) -> bool:
    with translate_errors("revoke api key"), engine.begin() as conn:
        res = conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.active)
            .values(active=False, revoked_at=utcnow())
        )
        return (res.rowcount or 0) > 0


def verify_key(engine: Engine, key: str) -> bool:
    """True if ``key`` is an active key (constant-time lookup by hash)."""
    with translate_errors("verify api key"), engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.id).where(api_keys.c.hash == _hash(key), api_keys.c.active)
        ).first()
        return row is not None
