"""The coordinator's HTTP API (FastAPI): thin routers over the domain services."""
