"""Counting a Redis client's round trips: every command, pipeline and script call reaches
the server as one ``send_packed_command`` of one connection, so counting those calls on
the connections of a client's pool counts its round trips (a health-check ``PING`` and a
``NOSCRIPT`` reload included: they are round trips too; a new connection's handshake is
not counted, since a pooled connection pays it once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

__all__ = ["counted_round_trips"]


@contextmanager
def counted_round_trips(client: redis.Redis) -> Iterator[list[bytes]]:
    """Within the block, every round trip ``client`` makes is appended (the packed command
    it sent) to the yielded list. The pool's connections are replaced by counting ones and
    put back after."""
    pool = client.connection_pool
    base = pool.connection_class
    sent: list[bytes] = []

    class Counting(base):  # type: ignore[valid-type,misc]
        handshake = False

        def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            self.handshake = True  # HELLO, CLIENT SETINFO…: a new connection's, not the caller's
            try:
                super().on_connect_check_health(*args, **kwargs)
            finally:
                self.handshake = False

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.handshake:
                sent.append(command if isinstance(command, bytes) else b"".join(command))
            super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    pool.disconnect()
    pool.reset()  # connections made from here on count
    try:
        yield sent
    finally:
        pool.connection_class = base
        pool.disconnect()
        pool.reset()
