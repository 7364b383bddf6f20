"""Who is at the console, and what they may do: operators, sessions and CSRF tokens.

Two ways in, chosen by ``[console]``:

- **Tokens** (``[console.operators.NAME]``): an operator posts their token to the
  login form once (never in a URL, so never in a log or a browser's history); it is
  compared in constant time with every configured token, and a match gets a session:
  a random id in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` and the
  ``__Host-`` prefix when served over TLS), kept in memory for ``session_ttl_s``.
  Restarting the console logs everyone out.
- **An SSO proxy** (``proxy_user_header``): the proxy authenticates and names the
  user in that header; it is believed only from a peer in ``trusted_proxies``, and a
  request from anyone else is refused, so the header cannot be forged by going
  around the proxy.

Either way each session has a CSRF token, derived from a key made at start and the
session, which every state-changing form carries (:meth:`Auth.csrf_ok`).
Roles: ``read`` sees everything; ``replay`` may also replay.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay.settings import ConsoleConfig, ConsoleRole

SESSION_COOKIE = "relay_console"
SECURE_SESSION_COOKIE = "__Host-relay_console"
"""The cookie's name over TLS: browsers accept a ``__Host-`` cookie only when it is
``Secure``, for ``/`` and without a ``Domain``, so no sibling host can plant one."""


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: ConsoleRole

    @property
    def may_replay(self) -> bool:
        return self.role == "replay"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    operator: Operator
    csrf: str
    expires_at: float


class Auth:
    """Logins, sessions and CSRF tokens for one console process."""

    def __init__(
        self, config: ConsoleConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}
        self.tls = bool(config.tls_certfile)

    @property
    def proxied(self) -> bool:
        return bool(self._config.proxy_user_header)

    @property
    def cookie_name(self) -> str:
        return SECURE_SESSION_COOKIE if self.tls else SESSION_COOKIE

    def login(self, token: str) -> Session | None:
        """A new session for the operator whose token this is, or None."""
        offered = token.encode()
        found: Operator | None = None
        # Every token is compared, a match or not: the time taken says nothing of which.
        for operator in self._config.operators:
            if hmac.compare_digest(offered, operator.token.encode()):
                found = Operator(operator.name, operator.role)
        if found is None:
            return None
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(
            session_id,
            found,
            self._csrf(f"session:{session_id}"),
            self._clock() + self._config.session_ttl_s,
        )
        self._sessions[session_id] = session
        return session

    def logout(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def session(self, cookie: str | None) -> Session | None:
        """The live session this cookie names, or None."""
        if not cookie:
            return None
        session = self._sessions.get(cookie)
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    def proxy_session(self, peer: str | None, user: str | None) -> Session | None:
        """The session of the user an SSO proxy names; None unless the peer is a trusted
        proxy and it names someone."""
        if not peer or not user or not self._trusted(peer):
            return None
        role: ConsoleRole = "replay" if user in self._config.proxy_replay_users else "read"
        return Session(
            f"proxy:{user}",
            Operator(user, role),
            self._csrf(f"proxy:{user}"),
            self._clock() + self._config.session_ttl_s,
        )

    def csrf_ok(self, session: Session, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), session.csrf.encode())

    def _csrf(self, subject: str) -> str:
        return hmac.new(self._key, subject.encode(), hashlib.sha256).hexdigest()

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._config.trusted_proxies)

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [key for key, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[session_id]
