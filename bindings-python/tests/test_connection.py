"""Behaviour of the sans-IO WebSocket API."""

from __future__ import annotations

import time

import pytest

import evsock
from conftest import RFC_REQUEST, drain, mask_frame, open_pair, pump


def test_rfc_handshake_and_echo():
    s = evsock.ServerConnection(now=0, timers=False)
    s.receive_data(RFC_REQUEST, now=0)
    (req,) = s.events()
    assert isinstance(req, evsock.Request)
    assert req.path == "/chat"
    assert req.header("host") == "example.com"
    assert req.header("x-missing", "dflt") == "dflt"
    assert ("Sec-WebSocket-Version", "13") in req.headers
    s.accept()
    assert list(s.events()) == [evsock.Open(None)]
    # The accept key from RFC 6455 section 1.3.
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in s.data_to_send()
    s.receive_data(mask_frame(0x1, b"Hello"), now=1)
    assert list(s.events()) == [evsock.TextMessage("Hello")]
    s.send_text("Hello")
    assert s.data_to_send() == b"\x81\x05Hello"


def test_open_event_after_accept_in_same_iteration():
    s = evsock.ServerConnection(now=0, timers=False)
    s.receive_data(RFC_REQUEST + mask_frame(0x2, b"\x00\x01"), now=0)
    seen = []
    for ev in s.events():
        seen.append(ev)
        if isinstance(ev, evsock.Request):
            s.accept()
    assert seen[1:] == [evsock.Open(None), evsock.BinaryMessage(b"\x00\x01")]


def test_messages_both_ways(pair):
    s, c = pair
    c.send_messages(["one", b"two", bytearray(b"three"), memoryview(b"four")])
    s.send_text("α" * 1000)
    s.send_binary(b"\xff" * 70000)
    ev_s, ev_c = pump(s, c)
    assert ev_s == [
        evsock.TextMessage("one"),
        evsock.BinaryMessage(b"two"),
        evsock.BinaryMessage(b"three"),
        evsock.BinaryMessage(b"four"),
    ]
    assert ev_c == [evsock.TextMessage("α" * 1000), evsock.BinaryMessage(b"\xff" * 70000)]


def test_batch_many_frames_in_one_call(pair):
    s, c = pair
    for i in range(500):
        c.send_text(f"m{i}")
    blob = c.data_to_send()
    s.receive_data(blob, now=1)
    got = [e.data for e in s.events()]
    assert got == [f"m{i}" for i in range(500)]


def test_fragments(pair):
    s, c = pair
    c.send_fragment("hel", fin=False)
    with pytest.raises(evsock.InvalidStateError, match="fragmented"):
        c.send_text("interleaved")
    c.send_fragment(b"lo", fin=True)
    c.send_text("after")
    ev, _ = pump(s, c)
    assert ev == [evsock.TextMessage("hello"), evsock.TextMessage("after")]


def test_ping_pong_auto(pair):
    s, c = pair
    c.ping(b"abc")
    ev_s, ev_c = pump(s, c)
    assert ev_s == [evsock.Ping(b"abc")]
    assert ev_c == [evsock.Pong(b"abc")]


def test_close_handshake_clean(pair):
    s, c = pair
    c.close(1000, "bye")
    assert c.state == "closing"
    ev_s, ev_c = pump(s, c)
    assert ev_s == [evsock.Closed(1000, "bye", True, True, None, None)]
    assert s.closed
    # The client waits for the server to end TCP.
    assert ev_c == []
    c.receive_data(b"", now=1)
    (closed,) = c.events()
    assert closed.code == 1000 and closed.clean and not closed.by_peer
    assert closed.error is None


def test_send_returns_bytes(pair):
    s, _ = pair
    assert s.send(evsock.TextMessage("x")) == b"\x81\x01x"
    assert s.send(evsock.BinaryMessage(b"y")) == b"\x82\x01y"
    assert s.send("z") == b"\x81\x01z"
    assert s.send(b"w") == b"\x82\x01w"
    assert s.send(evsock.Ping(b"p")) == b"\x89\x01p"
    assert s.send(evsock.Pong()) == b"\x8a\x00"
    assert s.send(evsock.Close(4000, "done")) == b"\x88\x06\x0f\xa0done"
    with pytest.raises(TypeError, match="cannot send"):
        s.send(42)


def test_send_accept_and_reject_events():
    s = evsock.ServerConnection(now=0, timers=False, subprotocols=["chat"])
    s.receive_data(RFC_REQUEST.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n"))
    (req,) = s.events()
    assert req.selected_subprotocol == "chat"
    out = s.send(evsock.AcceptConnection(headers={"Set-Cookie": "a=b"}))
    assert out.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: chat\r\n" in out and b"Set-Cookie: a=b\r\n" in out
    assert s.subprotocol == "chat"

    s = evsock.ServerConnection(now=0, timers=False)
    s.receive_data(RFC_REQUEST)
    list(s.events())
    out = s.send(evsock.RejectConnection(403, "nope"))
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and out.endswith(b"\r\n\r\nnope")
    (closed,) = s.events()
    assert closed.error == "handshake" and s.closed


def test_client_headers_origin_subprotocols():
    c = evsock.ClientConnection(
        "ws://h:1/p?q=1",
        subprotocols=["a", "b"],
        origin="https://o.example",
        headers=[("Authorization", "Bearer t")],
        timers=False,
    )
    req = c.data_to_send()
    assert req.startswith(b"GET /p?q=1 HTTP/1.1\r\nHost: h:1\r\n")
    assert b"Origin: https://o.example\r\n" in req
    assert b"Sec-WebSocket-Protocol: a, b\r\n" in req
    assert b"Authorization: Bearer t\r\n" in req


def test_seed_makes_client_deterministic():
    a = evsock.ClientConnection("ws://h/", seed=5, now=0)
    b = evsock.ClientConnection("ws://h/", seed=5, now=0)
    c = evsock.ClientConnection("ws://h/", now=0)
    d = evsock.ClientConnection("ws://h/", now=0)
    assert a.data_to_send() == b.data_to_send()
    assert c.data_to_send() != d.data_to_send()


def test_keepalive_and_pong_timeout_run_on_engine_timers():
    s, c = open_pair(timers=True, ping_interval_ms=1000, pong_timeout_ms=500)
    assert s.poll_timeout() == 1000
    s.handle_timeout(now=1000)
    ping = s.data_to_send()
    assert ping[0] == 0x89
    # The client answers the keep-alive ping; the server re-arms.
    c.receive_data(ping, now=1001)
    assert [type(e) for e in c.events()] == [evsock.Ping]
    s.receive_data(c.data_to_send(), now=1002)
    assert [type(e) for e in s.events()] == [evsock.Pong]
    assert s.poll_timeout() == 2002
    s.handle_timeout(now=2002)
    s.data_to_send()
    s.handle_timeout(now=2502)
    (closed,) = s.events()
    assert closed.code == 1011 and closed.error == "pong_timeout"
    assert "pong" in closed.error_message


def test_default_clock_is_monotonic_ms():
    before = int(time.monotonic() * 1000)
    s = evsock.ServerConnection(handshake_timeout_ms=10_000)
    after = int(time.monotonic() * 1000)
    assert before + 10_000 - 1 <= s.poll_timeout() <= after + 10_000 + 1
    assert abs(evsock.now_ms() - time.monotonic() * 1000) < 50


def test_protocol_error_becomes_closed_event_not_exception():
    s = evsock.ServerConnection(now=0, timers=False)
    s.receive_data(RFC_REQUEST)
    list(s.events())
    s.accept()
    drain(s)
    # An unmasked client frame is a protocol error.
    s.receive_data(b"\x81\x02hi")
    ev, out = drain(s)
    assert ev == [
        evsock.Closed(
            1002,
            "protocol error: client frames must be masked",
            False,
            False,
            "protocol",
            "protocol error: client frames must be masked",
        )
    ]
    assert out[:2] == b"\x88" + bytes([len(out) - 2])
    assert s.closed


def test_eof_without_close_is_abnormal(pair):
    s, _ = pair
    s.receive_data(None)
    (closed,) = s.events()
    assert closed.code == 1006 and closed.error == "unexpected_eof" and not closed.clean


def test_repr_and_eq():
    assert repr(evsock.TextMessage("hi")) == "TextMessage(data='hi')"
    assert evsock.BinaryMessage(bytearray(b"a")) == evsock.BinaryMessage(b"a")
    assert evsock.Ping(b"a") != evsock.Pong(b"a")
    assert evsock.Closed(1000) != evsock.Closed(1001)
    long = repr(evsock.TextMessage("x" * 1000))
    assert len(long) < 120 and long.endswith("...)")
    r = repr(evsock.ServerConnection(timers=False))
    assert r == "<evsock.ServerConnection state=handshake>"


def test_match_statement():
    match evsock.Closed(1001, "away", True):
        case evsock.Closed(code, reason, by_peer):
            assert (code, reason, by_peer) == (1001, "away", True)
        case _:
            raise AssertionError


def test_buffered_amount_tracks_queue(pair):
    s, _ = pair
    assert s.buffered_amount == 0
    s.send_binary(b"x" * 1000)
    assert s.buffered_amount >= 1000
    s.data_to_send()
    assert s.buffered_amount == 0
