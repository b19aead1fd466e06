"""pagestream: a Kafka-native document OCR pipeline whose work starts only from committed rows."""

from __future__ import annotations

__version__ = "0.1.0"
