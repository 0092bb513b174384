"""The coordinator's ServerApp (see ``coordinator.server_app``)."""

from coordinator.server_app import app

__all__ = ["app"]
