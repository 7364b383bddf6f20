"""Errors the HTTP layer turns into answers.

Each class carries its ``code`` and HTTP ``status``; the error middleware in
:mod:`relay.http` renders any of them, and any
:class:`verifiers.VerificationError`, as ``{"error": code, "message": ...}``
without a ladder of ``except`` clauses. Messages never contain secrets.

    RelayError
    ├── UnknownProvider         404
    ├── ForbiddenAddress        403
    ├── UnsupportedMediaType    415
    ├── UnsupportedContentEncoding 415  a Content-Encoding the instance does not accept
    ├── BodyTooLarge            413  the body, on the wire or unpacked, exceeds the instance's limit
    ├── UndecodableBody         400  a compressed body that does not decode (broken, truncated)
    ├── FragmentedBody          400  a body in too many pieces: HTTP chunks or gzip members
    ├── EventTooLarge           413  the canonical event exceeds the broker's message.max.bytes
    └── Unavailable             503  nothing durable can take the event now (Retry-After)

:class:`StartupError` is the other kind: no answer to anyone, the process does not start
(a taken port, a locked spool), and ``relay`` prints its one line.
"""

from __future__ import annotations

from typing import ClassVar


class RelayError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    retry_after_s: int | None = None


class UnknownProvider(RelayError):
    code = "unknown_provider"
    status = 404


class ForbiddenAddress(RelayError):
    code = "forbidden_address"
    status = 403


class UnsupportedMediaType(RelayError):
    code = "unsupported_media_type"
    status = 415


class UnsupportedContentEncoding(RelayError):
    code = "unsupported_content_encoding"
    status = 415


class BodyTooLarge(RelayError):
    """Over the instance's ``max_body_bytes``, counted on the wire and again unpacked.

    The code is the one aiohttp's own 413 (``client_max_size``) is rendered with, so a
    dashboard counting ``body_too_large`` sees both.
    """

    code = "body_too_large"
    status = 413


class UndecodableBody(RelayError):
    """The sender's fault, not ours: a 400, never a 500 with a traceback per request."""

    code = "undecodable_body"
    status = 400


class FragmentedBody(RelayError):
    """A body in more pieces than any sender writes (HTTP chunks, gzip members): each piece
    costs work of its own, so their number is bounded as the bytes are (:mod:`relay.body`)."""

    code = "fragmented_body"
    status = 400


class EventTooLarge(RelayError):
    code = "event_too_large"
    status = 413


class Unavailable(RelayError):
    """Neither Kafka nor the spool (nor the dedup store) can make the event durable now."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StartupError(Exception):
    """Relay cannot start, for a reason the operator can fix; the message says it in a line."""
