"""The persist service: a faust-streaming app storing page results and document progress."""
