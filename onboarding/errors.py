"""Domain errors: a code for programs, a pt-BR message for people, the HTTP status the API uses."""

from __future__ import annotations


class DomainError(Exception):
    http_status = 409

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if http_status is not None:
            self.http_status = http_status


class WorkflowError(DomainError):
    """A workflow rule refused the action (409)."""


class PermissionDenied(DomainError):
    http_status = 403


class NotFound(DomainError):
    http_status = 404


class InvalidInput(DomainError):
    http_status = 400
