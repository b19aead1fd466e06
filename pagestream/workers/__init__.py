"""Consumer loops composing the adapters: each service runs one or more of these."""
