"""The shared WebSocket golden vectors (tests/vectors/ws), run through the
Python API. Every binding runs the same files and must produce the same
bytes and events."""

from __future__ import annotations

import json

import pytest

import evsock
from conftest import VECTORS

WS_DIR = VECTORS / "ws"
FILES = sorted(WS_DIR.glob("*.json"))


def event_json(e) -> dict:
    match e:
        case evsock.Request():
            return {"type": "request", "path": e.path, "subprotocols": list(e.subprotocols)}
        case evsock.Open():
            return {"type": "open", "subprotocol": e.subprotocol}
        case evsock.TextMessage():
            return {"type": "text", "text": e.data}
        case evsock.BinaryMessage():
            return {"type": "binary", "hex": e.data.hex()}
        case evsock.Ping():
            return {"type": "ping", "hex": e.payload.hex()}
        case evsock.Pong():
            return {"type": "pong", "hex": e.payload.hex()}
        case evsock.Closed():
            return {
                "type": "closed",
                "code": e.code,
                "reason": e.reason,
                "clean": e.clean,
                "by_peer": e.by_peer,
                "error": e.error,
            }
    raise AssertionError(f"unexpected event {e!r}")


def make_connection(v: dict) -> evsock.Connection:
    config = dict(v["config"])
    if v["role"] == "server":
        return evsock.ServerConnection(now=0, timers=False, **config)
    c = v["client"]
    return evsock.ClientConnection(
        f"ws://{c['host']}{c['path']}",
        subprotocols=c["subprotocols"],
        seed=c["seed"],
        now=0,
        timers=False,
        **config,
    )


def run_call(conn: evsock.Connection, step: dict) -> None:
    call = step["call"]
    if call == "accept":
        conn.accept(subprotocol=step.get("subprotocol"))
    elif call == "reject":
        conn.reject(step["status"], step["body"])
    elif call == "send_text":
        conn.send_text(step["text"])
    elif call == "send_binary":
        conn.send_binary(bytes.fromhex(step["hex"]))
    elif call == "ping":
        conn.ping(bytes.fromhex(step["hex"]))
    elif call == "close":
        conn.close(step["code"], step["reason"])
    else:
        raise AssertionError(f"unknown call {call}")


def test_vectors_present():
    assert FILES, f"no vectors in {WS_DIR}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_ws_vector(path):
    v = json.loads(path.read_text())
    conn = make_connection(v)
    for i, step in enumerate(v["steps"]):
        ctx = f"{v['name']} step {i}"
        at = step.get("at", 0)
        error = None
        if "input" in step:
            conn.receive_data(bytes.fromhex(step["input"]), now=at)
        elif "input_text" in step:
            conn.receive_data(step["input_text"].encode(), now=at)
        elif "eof" in step:
            conn.receive_eof(now=at)
        elif "timeout" in step:
            conn.handle_timeout(now=at)
        elif "call" in step:
            try:
                run_call(conn, step)
            except evsock.EvsockError as e:
                error = e
        else:
            raise AssertionError(f"{ctx}: no action")

        if "error" in step:
            assert error is not None, f"{ctx}: expected error {step['error']}"
            assert error.kind == step["error"], ctx
            assert str(error), ctx
        else:
            assert error is None, f"{ctx}: unexpected error {error!r}"

        events = [event_json(e) for e in conn.events()]
        out = conn.data_to_send()
        if "transmit" in step:
            assert out.hex() == step["transmit"], f"{ctx}: transmit"
        if "transmit_text" in step:
            assert out.decode("utf-8", "replace") == step["transmit_text"], f"{ctx}: transmit_text"
        if "transmit_prefix_text" in step:
            assert out.decode("utf-8", "replace").startswith(step["transmit_prefix_text"]), ctx
        assert events == step.get("events", []), f"{ctx}: events"
        if "deadline" in step:
            assert conn.poll_timeout() == step["deadline"], f"{ctx}: deadline"
        if "state" in step:
            assert conn.state == step["state"], f"{ctx}: state"
            assert conn.closed == (step["state"] == "closed")
