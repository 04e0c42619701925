"""The shared session golden vectors (tests/vectors/session), run through
the Python API with raw (already-encoded) data, byte for byte."""

from __future__ import annotations

import json

import pytest

from conftest import VECTORS
from evsock import session as ses

SESSION_DIR = VECTORS / "session"
FILES = sorted(SESSION_DIR.glob("*.json"))


def data_fields(out: dict, raw) -> None:
    if isinstance(raw, str):
        out["data"] = raw
    else:
        out["data_hex"] = raw.hex()


def canonical(o) -> dict:
    match o:
        case ses.Send(message):
            return {"send": message} if isinstance(message, str) else {"send_hex": message.hex()}
        case ses.Established(session_id, resumed):
            return {"event": "established", "session_id": session_id, "resumed": resumed}
        case ses.Reset(unconfirmed):
            return {"event": "reset", "unconfirmed": list(unconfirmed) if unconfirmed else None}
        case ses.Gap(first, last):
            return {"event": "gap", "from": first, "to": last}
        case ses.Message():
            out = {"event": "message", "name": o.event, "id": o.id}
            data_fields(out, o.raw)
            return out
        case ses.Request():
            out = {
                "event": "request",
                "req": o.req,
                "name": o.event,
                "timeout_ms": o.timeout_ms,
                "idempotency_key": o.idempotency_key,
            }
            data_fields(out, o.raw)
            return out
        case ses.Reply():
            out = {"event": "reply", "req": o.req}
            data_fields(out, o.raw)
            return out
        case ses.RequestFailed():
            out = {"event": "request_failed", "req": o.req, "error": o.error}
            if o.error == "remote":
                data_fields(out, o.raw)
            return out
        case ses.Reconnect():
            return {"event": "reconnect"}
        case ses.CloseTransport(reason):
            return {"event": "close_transport", "reason": reason}
        case ses.Expired():
            return {"event": "expired"}
        case ses.Closed(by_peer):
            return {"event": "closed", "by_peer": by_peer}
        case ses.Error(code, message):
            assert message, "error events carry a message"
            return {"event": "error", "code": code}
    raise AssertionError(f"unexpected output {o!r}")


def step_data(step: dict):
    if "data" in step:
        return step["data"]
    if "data_hex" in step:
        return bytes.fromhex(step["data_hex"])
    return None


def run_call(s: ses.Session, step: dict, now: int):
    call = step["call"]
    data = step_data(step)
    try:
        if call == "connected":
            s.handle_connected(now=now)
        elif call == "disconnected":
            s.handle_disconnected(now=now)
        elif call == "timeout":
            s.handle_timeout(now=now)
        elif call == "message":
            msg = step["text"] if "text" in step else bytes.fromhex(step["hex"])
            s.handle_message(msg, now=now)
        elif call == "send":
            s.send(step["name"], data, raw=True, now=now)
        elif call == "send_reliable":
            return s.send_reliable(step["name"], data, raw=True, now=now)
        elif call == "request":
            return s.request(
                step["name"],
                data,
                timeout_ms=step["timeout_ms"],
                idempotency_key=step.get("idempotency_key"),
                raw=True,
                now=now,
            )
        elif call in ("reply", "reply_error"):
            getattr(s, call)(step["req"], data, raw=True, now=now)
        elif call == "close":
            s.close(now=now)
        elif call == "go_away":
            s.go_away(step["retry_after_ms"], now=now)
        else:
            raise AssertionError(f"unknown call {call}")
    except ses.SessionError as e:
        assert str(e)
        return {"error": e.kind}
    return None


def test_vectors_present():
    assert len(FILES) >= 6, f"expected the session vectors in {SESSION_DIR}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_session_vector(path):
    v = json.loads(path.read_text())
    config = dict(v.get("config") or {})
    fmt = config.pop("format", "json")
    if v["role"] == "client":
        s = ses.Session.client(format=fmt, rng_values=v.get("rng", []), **config)
    else:
        s = ses.Session.server(v["session_id"], format=fmt, rng_values=v.get("rng", []), **config)
    now = 0
    for i, step in enumerate(v["steps"]):
        ctx = f"{v['name']} step {i}"
        now = step.get("at", now)
        result = run_call(s, step, now)
        assert result == step.get("result"), f"{ctx}: result"
        outs = [canonical(o) for o in s.outputs()]
        assert outs == step.get("expect", []), f"{ctx}: outputs"
        if "next_timeout" in step:
            assert s.poll_timeout() == step["next_timeout"], f"{ctx}: next_timeout"
