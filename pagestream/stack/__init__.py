"""The embedded local stack: Tansu broker, private PostgreSQL, the service supervisor and its ``stack.json``."""

from __future__ import annotations
