"""The ingest service: HTTP API (uploads and queries) and the document.submit.v1 command consumer."""
