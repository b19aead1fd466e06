"""The embedded local stack: Tansu broker, private PostgreSQL, and the service supervisor."""

from __future__ import annotations
