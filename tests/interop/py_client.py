#!/usr/bin/env python3
"""Scripted interop checks against an evsock echo server, using the
`websockets` library as the client.

Usage: py_client.py ws://HOST:PORT[/path]

With INTEROP_DEFLATE=1 in the environment the client offers
permessage-deflate (websockets' defaults) and checks that it was negotiated,
so every check below also runs compressed.

Prints one line per check ("ok   name" / "FAIL name: why") and exits 0 only
if every check passed.
"""
import os
import random
import sys
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TIMEOUT = 20.0
DEFLATE = os.environ.get("INTEROP_DEFLATE") == "1"
results = []


def check(name):
    def wrap(fn):
        results.append((name, fn))
        return fn
    return wrap


def open_conn(url, **kw):
    return connect(
        url,
        compression="deflate" if DEFLATE else None,
        max_size=64 * 1024 * 1024,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
        **kw,
    )


def roundtrip(ws, message):
    ws.send(message)
    got = ws.recv(timeout=TIMEOUT)
    if type(got) is not type(message):
        raise AssertionError(f"sent {type(message).__name__}, got {type(got).__name__} back")
    if got != message:
        raise AssertionError(f"echo differs (sent {len(message)}, got {len(got)})")


def run(url):
    with open_conn(url) as ws:
        return run_checks(url, ws)


def run_checks(url, ws):
    rng = random.Random(6455)

    @check("extensions negotiated as asked")
    def _():
        names = [type(e).__name__ for e in ws.protocol.extensions]
        if DEFLATE and names != ["PerMessageDeflate"]:
            raise AssertionError(f"asked for permessage-deflate, negotiated {names}")
        if not DEFLATE and names:
            raise AssertionError(f"asked for no extension, negotiated {names}")
        return ", ".join(names) or "none"

    @check("text")
    def _():
        roundtrip(ws, "Hello, evsock!")

    @check("binary")
    def _():
        roundtrip(ws, bytes(range(256)))

    @check("empty text")
    def _():
        roundtrip(ws, "")

    @check("empty binary")
    def _():
        roundtrip(ws, b"")

    @check("binary 1 MiB")
    def _():
        roundtrip(ws, rng.randbytes(1024 * 1024))

    @check("text 200 KiB multi-byte UTF-8")
    def _():
        alphabet = "aé€😀ж中ß"  # 1-, 2-, 3- and 4-byte sequences
        text = "".join(rng.choice(alphabet) for _ in range(200 * 1024 // 2))
        while len(text.encode()) < 200 * 1024:
            text += "€"
        roundtrip(ws, text)

    @check("fragmented text (3 frames)")
    def _():
        parts = ["frag", "ment", "ed ✓"]
        ws.send(iter(parts))
        got = ws.recv(timeout=TIMEOUT)
        if got != "".join(parts):
            raise AssertionError(f"got {got!r}")

    @check("fragmented binary (4 frames)")
    def _():
        parts = [os.urandom(1000) for _ in range(4)]
        ws.send(iter(parts))
        got = ws.recv(timeout=TIMEOUT)
        if got != b"".join(parts):
            raise AssertionError("reassembled payload differs")

    @check("ping/pong")
    def _():
        # websockets only completes the waiter for a pong with this payload.
        started = time.monotonic()
        waiter = ws.ping(b"evsock-ping")
        if not waiter.wait(TIMEOUT):
            raise AssertionError("no pong within timeout")
        return f"{(time.monotonic() - started) * 1000:.1f} ms"

    @check("burst of 1000 messages, in order")
    def _():
        n = 1000
        for i in range(n):
            ws.send(f"msg-{i}")
        for i in range(n):
            got = ws.recv(timeout=TIMEOUT)
            if got != f"msg-{i}":
                raise AssertionError(f"message {i}: got {got!r}")

    @check("close 1000 with reason, code echoed")
    def _():
        ws.close(1000, "bye from websockets")
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            raise AssertionError("no close frame received")
        if rcvd.code != 1000:
            raise AssertionError(f"server closed with {rcvd.code} {rcvd.reason!r}")

    @check("subprotocol offer 'chat'")
    def _():
        with open_conn(url, subprotocols=["chat"]) as ws2:
            if ws2.subprotocol not in (None, "chat"):
                raise AssertionError(f"server selected {ws2.subprotocol!r}")
            roundtrip(ws2, "in a subprotocol")
            detail = ws2.subprotocol or "none selected"
        return detail

    failed = 0
    for name, fn in results:
        try:
            detail = fn()
            print(f"ok   {name}" + (f" ({detail})" if detail else ""))
        except (Exception, ConnectionClosed) as e:  # report and keep going
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"py_client: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: py_client.py ws://HOST:PORT")
    sys.exit(run(sys.argv[1]))
