"""Shared helpers for the evsock Python tests."""

from __future__ import annotations

import pathlib

import pytest

import evsock

REPO = pathlib.Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"

# A client handshake as RFC 6455 section 1.3 shows it.
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def mask_frame(opcode: int, payload: bytes, fin: bool = True, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A masked (client-to-server) frame, built by hand."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += n.to_bytes(8, "big")
    head += key
    return bytes(head) + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def drain(conn: evsock.Connection) -> tuple[list, bytes]:
    """Events first, then bytes: the order a sans-IO host drains in."""
    events = list(conn.events())
    return events, conn.data_to_send()


def open_pair(**config) -> tuple[evsock.ServerConnection, evsock.ClientConnection]:
    """A server and a client connected in memory, both open, timers off
    unless overridden."""
    config.setdefault("timers", False)
    server = evsock.ServerConnection(now=0, **config)
    client = evsock.ClientConnection("ws://example.com/chat", seed=1, now=0, **config)
    server.receive_data(client.data_to_send(), now=0)
    seen = []
    for ev in server.events():
        seen.append(type(ev))
        if isinstance(ev, evsock.Request):
            server.accept()
    assert seen == [evsock.Request, evsock.Open]
    client.receive_data(server.data_to_send(), now=0)
    assert [type(e) for e in client.events()] == [evsock.Open]
    assert server.state == client.state == "open"
    return server, client


def pump(a: evsock.Connection, b: evsock.Connection, now: int = 0) -> tuple[list, list]:
    """Moves bytes both ways until quiet; returns the events each side saw."""
    seen_a: list = []
    seen_b: list = []
    for _ in range(100):
        ev_a, out_a = drain(a)
        ev_b, out_b = drain(b)
        seen_a += ev_a
        seen_b += ev_b
        if not out_a and not out_b and not ev_a and not ev_b:
            return seen_a, seen_b
        if out_a:
            b.receive_data(out_a, now=now)
        if out_b:
            a.receive_data(out_b, now=now)
    raise AssertionError("connections did not go quiet")


@pytest.fixture
def pair():
    return open_pair()
