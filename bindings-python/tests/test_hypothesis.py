"""Property tests: however the transport splits the bytes, the same events
come out; arbitrary bytes never crash anything; data survives both codecs."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evsock
from evsock import session as ses
from conftest import RFC_REQUEST, open_pair

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Large messages (over 64 KiB framing thresholds) built from a short
# random pattern: hypothesis generating 70 KB byte by byte would dominate the
# run time without finding anything a repeated pattern cannot.
large_binary = st.tuples(st.integers(60_000, 70_000), st.binary(min_size=1, max_size=16)).map(
    lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
)

messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300), large_binary),
    max_size=12,
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return [c for c in out if c]


def events_of(conn: evsock.Connection, chunks: list[bytes], accept: bool = True) -> list:
    seen = []
    for i, chunk in enumerate(chunks):
        conn.receive_data(chunk, now=i)
        for ev in conn.events():
            seen.append(ev)
            if accept and isinstance(ev, evsock.Request):
                conn.accept()
    return seen


def client_conversation(msgs: list, fragment: bool) -> bytes:
    """Bytes a client sends: handshake, messages, a ping, a close."""
    c = evsock.ClientConnection("ws://h/chat", seed=3, timers=False, deflate=False)
    out = bytearray(c.data_to_send())
    s = evsock.ServerConnection(timers=False, deflate=False)
    s.receive_data(bytes(out))
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    c.receive_data(s.data_to_send())
    list(c.events())
    for m in msgs:
        if fragment and len(m) > 2:
            half = len(m) // 2
            if isinstance(m, str):
                # Fragments of text must each be valid UTF-8 here.
                c.send_fragment(m[:half], fin=False)
                c.send_fragment(m[half:].encode(), fin=True)
            else:
                c.send_fragment(m[:half], fin=False)
                c.send_fragment(m[half:], fin=True)
        elif isinstance(m, str):
            c.send_text(m)
        else:
            c.send_binary(m)
    c.ping(b"pp")
    c.close(4000, "done")
    out += c.data_to_send()
    return bytes(out)


@SETTINGS
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0), max_size=40), fragment=st.booleans())
def test_server_events_do_not_depend_on_read_boundaries(msgs, cuts, fragment):
    data = client_conversation(msgs, fragment)
    whole = events_of(evsock.ServerConnection(timers=False, deflate=False), [data])
    pieces = events_of(evsock.ServerConnection(timers=False, deflate=False), split(data, cuts))
    assert pieces == whole
    got = [e.data for e in whole if isinstance(e, (evsock.TextMessage, evsock.BinaryMessage))]
    assert got == msgs
    assert whole[-2] == evsock.Ping(b"pp")
    assert isinstance(whole[-1], evsock.Closed) and whole[-1].code == 4000 and whole[-1].clean


@SETTINGS
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_client_events_do_not_depend_on_read_boundaries(msgs, cuts):
    s, _ = open_pair(deflate=False)
    for m in msgs:
        (s.send_text if isinstance(m, str) else s.send_binary)(m)
    data = s.data_to_send()

    def fresh():
        _, c = open_pair(deflate=False)
        return c

    whole = events_of(fresh(), [data], accept=False) if data else []
    pieces = events_of(fresh(), split(data, cuts), accept=False) if data else []
    assert pieces == whole
    assert [e.data for e in whole] == msgs


@SETTINGS
@given(msgs=st.lists(st.text(max_size=2000), max_size=8), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_deflate_round_trip_any_split(msgs, cuts):
    c = evsock.ClientConnection("ws://h/", seed=9, timers=False, deflate={"threshold": 0})
    s = evsock.ServerConnection(timers=False, deflate={"threshold": 0})
    s.receive_data(c.data_to_send())
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    c.receive_data(s.data_to_send())
    list(c.events())
    for m in msgs:
        c.send_text(m)
    got = events_of(s, split(c.data_to_send(), cuts), accept=False)
    assert [e.data for e in got] == msgs


@SETTINGS
@given(junk=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_bytes_after_handshake_never_raise(junk, cuts):
    s, _ = open_pair()
    seen = []
    for i, chunk in enumerate(split(junk, cuts)):
        s.receive_data(chunk, now=i)
        for ev in s.events():
            assert isinstance(
                ev, (evsock.TextMessage, evsock.BinaryMessage, evsock.Ping, evsock.Pong, evsock.Closed)
            )
            seen.append(ev)
        s.data_to_send()
    s.receive_data(None, now=99)
    seen += s.events()
    # Whatever the bytes were, end of stream ends the connection, with
    # exactly one Closed event and nothing after it.
    assert s.closed
    assert isinstance(seen[-1], evsock.Closed)
    assert sum(isinstance(e, evsock.Closed) for e in seen) == 1


@SETTINGS
@given(junk=st.binary(max_size=600))
def test_arbitrary_handshake_bytes_never_raise(junk):
    s = evsock.ServerConnection(timers=False)
    s.receive_data(junk, now=0)
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    s.data_to_send()
    c = evsock.ClientConnection("ws://h/", timers=False)
    c.data_to_send()
    c.receive_data(junk, now=0)
    list(c.events())
    c.data_to_send()


@SETTINGS
@given(prefix=st.binary(max_size=50))
def test_request_with_trailing_garbage(prefix):
    s = evsock.ServerConnection(timers=False)
    s.receive_data(RFC_REQUEST + prefix)
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    s.data_to_send()


# ------------------------------------------------------------- sessions ---

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=5),
    max_leaves=30,
)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


@SETTINGS
@given(value=json_values)
def test_json_data_round_trip(value):
    assert same(value, ses.decode(ses.encode(value, "json")))


@SETTINGS
@given(value=msgpack_values)
def test_msgpack_data_round_trip(value):
    assert same(value, ses.decode(ses.encode(value, "msgpack")))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(json_values, min_size=1, max_size=5), fmt=st.sampled_from(["json", "msgpack"]))
def test_values_cross_a_session(values, fmt):
    from test_errors import established_pair

    c, s = established_pair(fmt)
    for v in values:
        c.send_reliable("data/v", v, now=2)
    got = []
    for o in list(c.outputs()):
        if isinstance(o, ses.Send):
            s.handle_message(o.message, now=3)
    for o in s.outputs():
        if isinstance(o, ses.Message):
            got.append(o.data)
    assert len(got) == len(values)
    assert all(same(a, b) for a, b in zip(values, got))


@SETTINGS
@given(junk=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_session_messages_never_raise(junk):
    from test_errors import established_pair

    c, s = established_pair()
    for side in (c, s):
        side.handle_message(junk, now=5)
        for o in side.outputs():
            repr(o)
            if isinstance(o, (ses.Message, ses.Request, ses.Reply)):
                o.raw
        side.poll_timeout()
