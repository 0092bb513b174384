"""Errors raised by the coordinator's domain services.

Each class says what kind of refusal it is, so that the HTTP layer maps it to one status
code and the CLI to one line; messages name the field or record at fault and what to do.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    """Base class for every error raised by ``coordinator``."""


class InvalidRequest(CoordinatorError):
    """A request is malformed or breaks a rule (HTTP 422). ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotAuthenticated(CoordinatorError):
    """No API key, or one that is unknown, malformed or revoked (HTTP 401)."""


class Forbidden(CoordinatorError):
    """The caller's role may not do this (HTTP 403)."""


class NotFound(CoordinatorError):
    """No such record, or one the caller may not see (HTTP 404)."""


class Conflict(CoordinatorError):
    """The request clashes with the current state (HTTP 409): a taken name, a wrong job state."""


class PaymentRequired(CoordinatorError):
    """A job's budget does not cover its quote (HTTP 402)."""


class ConfigError(CoordinatorError):
    """The coordinator home or its configuration is missing or invalid."""


class UpstreamError(CoordinatorError):
    """A process or service the coordinator depends on failed (HTTP 503): the SuperLink, a
    witness."""
