"""Bad input of every kind gives a clear Python exception (never a panic,
hang or unbounded allocation)."""

from __future__ import annotations

import pytest

import evsock
from evsock import session as ses
from conftest import RFC_REQUEST, drain, mask_frame, open_pair


def test_exception_hierarchy():
    assert issubclass(evsock.InvalidArgumentError, evsock.EvsockError)
    assert issubclass(evsock.InvalidArgumentError, ValueError)
    assert issubclass(evsock.OutboundFullError, BufferError)
    assert issubclass(evsock.RequestTimeout, evsock.RequestError)
    assert issubclass(evsock.RequestTimeout, TimeoutError)
    assert evsock.InvalidStateError.kind == "invalid_state"
    assert evsock.EvsockError.__module__ == "evsock"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda c: c.close(1005), evsock.InvalidArgumentError, "1005 may not be sent"),
        (lambda c: c.close(999), evsock.InvalidArgumentError, "may not be sent"),
        (lambda c: c.close(70000), evsock.InvalidArgumentError, "between 0 and 65535"),
        (lambda c: c.close(-1), evsock.InvalidArgumentError, "between 0 and 65535"),
        (lambda c: c.close(10**40), evsock.InvalidArgumentError, "huge"),
        (lambda c: c.close(1000.0), TypeError, "must be an int"),
        (lambda c: c.close(1000, "x" * 124), evsock.InvalidArgumentError, "at most 123"),
        (lambda c: c.close(1000, "é" * 62), evsock.InvalidArgumentError, "124 bytes"),
        (lambda c: c.close(1000, b"r"), TypeError, "must be a str"),
        (lambda c: c.ping(b"x" * 126), evsock.InvalidArgumentError, "at most 125"),
        (lambda c: c.pong(b"x" * 200), evsock.InvalidArgumentError, "at most 125"),
        (lambda c: c.ping("text"), TypeError, "not str"),
        (lambda c: c.send_text(b"bytes"), TypeError, "expects str"),
        (lambda c: c.send_text("\ud800"), evsock.InvalidArgumentError, "surrogate"),
        (lambda c: c.send_binary("text"), TypeError, "not str"),
        (lambda c: c.send_binary(12), TypeError, "bytes, bytearray or memoryview"),
        (lambda c: c.send_messages([5]), TypeError, "bytes, bytearray or memoryview"),
        (lambda c: c.send_messages(7), TypeError, "not iterable"),
        (lambda c: c.send(object()), TypeError, "cannot send"),
        (lambda c: c.send_fragment("\ud800", True), evsock.InvalidArgumentError, "surrogate"),
        (lambda c: c.receive_data("text"), TypeError, "not str"),
        (lambda c: c.receive_data(b"x", now=-5), evsock.InvalidArgumentError, "non-negative"),
        (lambda c: c.receive_data(b"x", now=float("nan")), evsock.InvalidArgumentError, "finite"),
        (lambda c: c.handle_timeout(now="soon"), TypeError, "must be an int"),
        (lambda c: c.handle_timeout(now=2**64), evsock.InvalidArgumentError, "between 0"),
        (lambda c: c.accept(), evsock.InvalidStateError, "no upgrade request"),
    ],
)
def test_bad_calls(pair, call, exc, match):
    s, _ = pair
    with pytest.raises(exc, match=match) as ei:
        call(s)
    assert str(ei.value)
    # The connection is unharmed.
    s.send_text("still fine")
    assert s.data_to_send() == b"\x81\x0astill fine"


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"bogus": 1}, TypeError, "unexpected keyword argument 'bogus'"),
        ({"max_frame_size": -1}, evsock.InvalidArgumentError, "max_frame_size"),
        ({"max_frame_size": "big"}, TypeError, "max_frame_size must be an int"),
        ({"max_headers": 10**6}, evsock.InvalidArgumentError, "max_headers"),
        ({"max_headers": 1}, evsock.InvalidArgumentError, "at least 4"),
        ({"max_handshake_bytes": 10}, evsock.InvalidArgumentError, "at least 64"),
        ({"buffer_retain": 1 << 40}, evsock.InvalidArgumentError, "buffer_retain"),
        ({"ping_interval_ms": -3}, evsock.InvalidArgumentError, "ping_interval_ms"),
        ({"ping_interval_ms": float("inf")}, evsock.InvalidArgumentError, "finite"),
        ({"auto_pong": 1}, TypeError, "must be a bool"),
        ({"subprotocols": "chat"}, TypeError, "list of str"),
        ({"subprotocols": ["bad name"]}, evsock.InvalidArgumentError, "HTTP token"),
        ({"subprotocols": [1]}, TypeError, "must be a str"),
        ({"origins": ["https://a"] * 2000}, evsock.InvalidArgumentError, "more than 1024"),
        ({"allow_missing_origin": True}, evsock.InvalidArgumentError, "origins"),
        ({"deflate": "yes"}, TypeError, "bool or a dict"),
        ({"deflate": {"level": 12}}, evsock.InvalidArgumentError, "between 0 and 9"),
        ({"deflate": {"server_max_window_bits": 8}}, evsock.InvalidArgumentError, "9 to 15"),
        ({"deflate": {"speed": 1}}, TypeError, "unknown deflate setting"),
        ({"now": -1}, evsock.InvalidArgumentError, "non-negative"),
    ],
)
def test_bad_server_config(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        evsock.ServerConnection(**kwargs)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (("http://x/",), {}, evsock.InvalidArgumentError, "ws:// or wss://"),
        (("ws:///path",), {}, evsock.InvalidArgumentError, "URL host"),
        ((b"ws://x/",), {}, TypeError, "url must be a str"),
        (("ws://x/",), {"seed": -1}, evsock.InvalidArgumentError, "seed"),
        (("ws://x/",), {"origin": "a\r\nX: y"}, evsock.InvalidArgumentError, "CR, LF"),
        (("ws://x/",), {"headers": {"X-A": "1\r\nEvil: 1"}}, evsock.InvalidArgumentError, "CR, LF"),
        (("ws://x/",), {"headers": {"Bad Name": "1"}}, evsock.InvalidArgumentError, "header name"),
        (("ws://x/",), {"headers": [("a",)]}, TypeError, "pairs"),
        (("ws://x/",), {"headers": 5}, TypeError, "not iterable"),
        (("ws://x/",), {"subprotocols": ["a,b"]}, evsock.InvalidArgumentError, "HTTP token"),
    ],
)
def test_bad_client_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        evsock.ClientConnection(*args, **kwargs)


def test_infinite_header_iterator_is_bounded():
    def forever():
        while True:
            yield ("X-A", "1")

    with pytest.raises(evsock.InvalidArgumentError, match="256"):
        evsock.ClientConnection("ws://x/", headers=forever())


def test_reject_and_accept_arguments():
    s = evsock.ServerConnection(timers=False)
    s.receive_data(RFC_REQUEST)
    list(s.events())
    with pytest.raises(evsock.InvalidArgumentError, match="300 to 599"):
        s.reject(200)
    with pytest.raises(evsock.InvalidArgumentError, match="300 to 599"):
        s.reject(1000)
    with pytest.raises(TypeError, match="body must be str or bytes"):
        s.reject(400, 5)
    with pytest.raises(evsock.InvalidArgumentError, match="subprotocol"):
        s.accept(subprotocol="a b")
    with pytest.raises(evsock.InvalidArgumentError, match="CR, LF"):
        s.accept(headers=[("Set-Cookie", "a\nb")])
    # After all that the request can still be accepted.
    s.accept()
    assert s.state == "open"


def test_client_cannot_accept():
    c = evsock.ClientConnection("ws://x/")
    with pytest.raises(evsock.InvalidStateError, match="only a server"):
        c.send(evsock.AcceptConnection())


def test_state_errors_carry_kind():
    s = evsock.ServerConnection(timers=False)
    with pytest.raises(evsock.InvalidStateError) as ei:
        s.send_text("too early")
    assert ei.value.kind == "invalid_state" and "handshake" in str(ei.value)


def test_outbound_limit(pair):
    s, _ = open_pair(max_outbound_bytes=1000)
    s.send_binary(b"x" * 900)
    with pytest.raises(evsock.OutboundFullError, match="1000") as ei:
        s.send_binary(b"x" * 900)
    assert ei.value.kind == "outbound_full"
    s.data_to_send()
    s.send_binary(b"x" * 900)


def test_oversized_message_closes_with_1009():
    s, c = open_pair(max_message_size=100)
    c.send_binary(b"x" * 101)
    s.receive_data(c.data_to_send())
    (closed,) = s.events()
    assert closed.code == 1009 and closed.error == "message_too_large"


def test_announced_huge_frame_does_not_allocate():
    s, _ = open_pair()
    # A masked frame announcing 2**62 bytes: refused from the header alone.
    s.receive_data(b"\x82\xff" + (2**62).to_bytes(8, "big") + b"\x00\x00\x00\x00")
    (closed,) = s.events()
    assert closed.code == 1009 and closed.error == "frame_too_large"


def test_garbage_handshake_gets_http_error():
    s = evsock.ServerConnection(timers=False)
    s.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
    events, out = drain(s)
    assert out.startswith(b"HTTP/1.1 405 ")
    assert events[-1].error == "handshake" and "POST" in events[-1].error_message


def test_data_after_close_is_ignored():
    s, c = open_pair()
    s.receive_data(None)
    list(s.events())
    s.receive_data(mask_frame(1, b"late"))
    assert list(s.events()) == [] and s.data_to_send() == b""
    with pytest.raises(evsock.InvalidStateError, match="closed"):
        s.send_text("x")


def test_event_iterator_reentrancy_is_an_error_not_a_crash(pair):
    s, c = pair
    c.send_text("a")
    s.receive_data(c.data_to_send())
    it = s.events()
    assert next(it) == evsock.TextMessage("a")
    assert next(it, None) is None


# ------------------------------------------------------------- sessions ---


def established_pair(fmt="json"):
    c = ses.Session.client(format=fmt, seed=1, ping_interval_ms=None, idle_timeout_ms=None)
    s = ses.Session.server("S1", seed=2, ping_interval_ms=None, idle_timeout_ms=None)
    c.handle_connected(now=0)
    s.handle_connected(now=0)
    for _ in range(4):
        for o in list(c.outputs()):
            if isinstance(o, ses.Send):
                s.handle_message(o.message, now=1)
        for o in list(s.outputs()):
            if isinstance(o, ses.Send):
                c.handle_message(o.message, now=1)
    assert c.established and s.established
    return c, s


@pytest.mark.parametrize(
    "call, kind, match",
    [
        (lambda c: c.send("evs/x", 1), "reserved_event", "reserved"),
        (lambda c: c.send("has space", 1), "bad_event_id", "invalid event id"),
        (lambda c: c.send("x" * 200, 1), "bad_event_id", "invalid event id"),
        (lambda c: c.send_reliable("a/b", "[1,", raw=True), "invalid_data", "well-formed"),
        (lambda c: c.send_reliable("a/b", "x" * 2_000_000), "too_large", "max_message_bytes"),
        (lambda c: c.request("a/b", 1, timeout_ms=0), "bad_timeout", "timeout"),
        (lambda c: c.request("a/b", 1, timeout_ms=10**9), "bad_timeout", "timeout"),
        (lambda c: c.request("a/b", 1, timeout_ms=5, idempotency_key=""), "bad_idempotency_key", "key"),
        (lambda c: c.reply(99, 1), "unknown_request", "no such"),
    ],
)
def test_session_refusals(call, kind, match):
    c, _ = established_pair()
    with pytest.raises(evsock.SessionError, match=match) as ei:
        call(c)
    assert ei.value.kind == kind


@pytest.mark.parametrize(
    "value, exc, match",
    [
        (b"bytes", evsock.InvalidArgumentError, "JSON cannot carry bytes"),
        (float("nan"), evsock.InvalidArgumentError, "JSON cannot carry the float"),
        ({1: "int key"}, evsock.InvalidArgumentError, "keys must be str"),
        (2**70, evsock.InvalidArgumentError, "64 bits"),
        (object(), TypeError, "cannot encode a object"),
        ({"s": {1, 2}}, TypeError, "cannot encode a set"),
        ("\udc80", evsock.InvalidArgumentError, "surrogate"),
    ],
)
def test_unencodable_json_data(value, exc, match):
    c, _ = established_pair()
    with pytest.raises(exc, match=match):
        c.send_reliable("a/b", value)
    assert c.unacked_messages == 0


def test_self_referencing_and_deep_data_is_refused():
    c, _ = established_pair()
    loop: list = []
    loop.append(loop)
    with pytest.raises(evsock.InvalidArgumentError, match="nested more than 64"):
        c.send_reliable("a/b", loop)
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(evsock.InvalidArgumentError, match="nested"):
        ses.encode(deep)


def test_msgpack_carries_bytes_and_non_finite_floats():
    raw = ses.encode({"b": b"\x00\x01", "f": float("inf"), 1: [None, True]}, "msgpack")
    assert isinstance(raw, bytes)
    assert ses.decode(raw) == {"b": b"\x00\x01", "f": float("inf"), 1: [None, True]}


def test_bad_session_construction():
    with pytest.raises(evsock.InvalidArgumentError, match="format"):
        ses.Session.client(format="xml")
    with pytest.raises(evsock.InvalidArgumentError, match="invalid session id"):
        ses.Session.server("has space")
    with pytest.raises(evsock.InvalidArgumentError, match="invalid session id"):
        ses.Session.server("x" * 65)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_frame_size'"):
        ses.Session.client(max_frame_size=1)
    with pytest.raises(evsock.InvalidArgumentError, match="at least 1"):
        ses.Session.client(max_batch_envelopes=0)
    with pytest.raises(TypeError):
        ses.Session()


def test_session_bad_input_is_an_event_not_an_exception():
    c, s = established_pair()
    for bad in ["", "not json", "[]", '["evs/ack",{"bogus"', b"\xc1\xc1", '[["a"],["b"]]' * 3]:
        s.handle_message(bad, now=5)
    codes = [o.code for o in s.outputs() if isinstance(o, ses.Error)]
    assert codes and all(isinstance(code, str) for code in codes)


def test_peek_hello_errors():
    with pytest.raises(evsock.SessionError, match="not a session hello") as ei:
        ses.peek_hello('["chat/x",1]')
    assert ei.value.kind == "envelope"
    h = ses.peek_hello('["evs/hello",{"v":1,"sid":"abc","rx":4,"lo":2}]')
    assert (h.format, h.session_id, h.rx, h.lo, h.version) == ("json", "abc", 4, 2, 1)


def test_decode_rejects_malformed_and_deep_input():
    with pytest.raises(evsock.InvalidArgumentError, match="cannot decode"):
        ses.decode("[1,")
    with pytest.raises(evsock.InvalidArgumentError, match="cannot decode"):
        ses.decode("[" * 5000 + "]" * 5000)
    with pytest.raises(evsock.InvalidArgumentError, match="cannot decode"):
        ses.decode(b"\x91" * 5000 + b"\xc0")
