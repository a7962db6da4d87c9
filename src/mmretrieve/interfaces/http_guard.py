"""A deadline for request headers in ``mmretrieve serve`` (slow-client protection).

uvicorn closes idle keep-alive connections, but a client that connects and then sends nothing,
or trickles its request headers a byte at a time, holds a connection for ever: the app is only
called once the headers are complete, so ``create_app``'s own timeouts (request body, waiting
for a search) cannot see it. This protocol closes a connection whose next request's headers are
not complete ``header_timeout`` seconds after the connection opened or the previous response
ended. uvicorn is imported only when the protocol is built (the ``server`` extra is optional).
"""

from __future__ import annotations

import asyncio
from typing import Any


def guarded_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for request headers (pass it as ``http=``)."""
    if header_timeout <= 0:
        raise ValueError(f"header_timeout must be positive, got {header_timeout}")
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _expire(self) -> None:
            self._deadline = None
            if self._waiting_for_headers() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if not self._waiting_for_headers():
                self._disarm()  # a request is in: the app's own timeouts take over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._waiting_for_headers():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


ENV_HEADER_TIMEOUT = "MMRETRIEVE_SERVE_HEADER_TIMEOUT"


def __getattr__(name: str) -> Any:
    """``EnvGuardedProtocol``: the same protocol, its deadline read from
    ``MMRETRIEVE_SERVE_HEADER_TIMEOUT``, importable by name (``serve --workers`` hands uvicorn
    an import string, since worker processes cannot receive a class made at run time)."""
    if name == "EnvGuardedProtocol":
        import os

        return guarded_protocol(float(os.environ.get(ENV_HEADER_TIMEOUT, "30")))
    raise AttributeError(name)
