"""The HTTP API: a Ray Serve application (FastAPI ingress) in front of ``LedgerClient``."""
