#!/usr/bin/env python3
"""Checks the C example host (ffi/examples/echo_server.c) with the
`websockets` library as the client: echo of every message type, the chat
room's broadcast, subprotocol selection, a 404 for unknown paths, several
clients at once, and a clean close.

Usage: example_client.py ws://127.0.0.1:PORT

Prints one line per check ("ok   name" / "FAIL name: why") and exits 0 only
if every check passed.
"""
import sys
import threading

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10.0


def open_conn(url, **kw):
    return connect(url, compression=None, max_size=None, open_timeout=TIMEOUT,
                   close_timeout=TIMEOUT, ping_interval=None, **kw)


def check_echo(base):
    with open_conn(base + "/echo") as ws:
        for msg in ["hello", "h\u00e9llo \U0001f600", "", b"\x00\x01\x02", b"", bytes(range(256)) * 4096]:
            ws.send(msg)
            got = ws.recv(timeout=TIMEOUT)
            assert type(got) is type(msg), f"sent {type(msg).__name__}, got {type(got).__name__}"
            assert got == msg, f"echo differs for a message of {len(msg)}"
        ws.send(["frag", "mented"])  # one text message in two frames
        assert ws.recv(timeout=TIMEOUT) == "fragmented"
        pong = ws.ping(b"are you there")
        assert pong.wait(TIMEOUT), "no pong"
        ws.close(1000, "bye")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and rcvd.code == 1000, f"close answered with {rcvd}"


def check_root_is_echo(base):
    with open_conn(base + "/") as ws:
        ws.send("root")
        assert ws.recv(timeout=TIMEOUT) == "root"


def check_chat(base):
    with open_conn(base + "/chat") as a, open_conn(base + "/chat") as b, open_conn(base + "/echo") as e:
        a.send("hi all")
        assert a.recv(timeout=TIMEOUT) == "hi all"
        assert b.recv(timeout=TIMEOUT) == "hi all"
        b.send("hi a")
        assert a.recv(timeout=TIMEOUT) == "hi a"
        assert b.recv(timeout=TIMEOUT) == "hi a"
        # The echo client is not in the room.
        e.send("only me")
        assert e.recv(timeout=TIMEOUT) == "only me"


def check_subprotocol(base):
    with open_conn(base + "/chat", subprotocols=["other", "chat"]) as ws:
        assert ws.subprotocol == "chat", f"selected {ws.subprotocol!r}"
    with open_conn(base + "/echo") as ws:
        assert ws.subprotocol is None


def check_404(base):
    try:
        with open_conn(base + "/nope"):
            pass
    except InvalidStatus as e:
        assert e.response.status_code == 404, e.response.status_code
        assert b"no such endpoint" in e.response.body
        return
    raise AssertionError("connected to an unknown path")


def check_many_clients(base):
    errors = []

    def worker(i):
        try:
            with open_conn(base + "/echo") as ws:
                for k in range(50):
                    ws.send(f"{i}:{k}")
                for k in range(50):
                    got = ws.recv(timeout=TIMEOUT)
                    if got != f"{i}:{k}":
                        raise AssertionError(f"client {i} got {got!r}")
        except Exception as e:  # reported below
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors, errors[0]


CHECKS = [
    ("echo of text, binary, empty, 1 MiB, fragments, ping, close", check_echo),
    ("/ is an echo endpoint too", check_root_is_echo),
    ("chat room broadcasts to everyone in it", check_chat),
    ("subprotocol 'chat' selected when offered", check_subprotocol),
    ("unknown path gets 404", check_404),
    ("16 clients at once, in order", check_many_clients),
]


def main():
    base = sys.argv[1].rstrip("/")
    failed = 0
    for name, fn in CHECKS:
        try:
            fn(base)
            print(f"ok   {name}")
        except Exception as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        sys.stdout.flush()
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
