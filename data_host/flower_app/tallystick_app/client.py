"""The data host's ClientApp (see ``data_host.client_app``)."""

from data_host.client_app import app

__all__ = ["app"]
