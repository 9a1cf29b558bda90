"""Errors of the SDK."""


class SubletError(Exception):
    """A Sublet call failed. `code` is the coordinator's canonical status name
    ("NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED",
    "UNAVAILABLE", ...) when it answered, or "" for an error found locally."""

    def __init__(self, message, code=""):
        super().__init__(message)
        self.code = code
