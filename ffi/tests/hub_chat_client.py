#!/usr/bin/env python3
"""Checks the C hub chat host (ffi/examples/hub_chat.c) with the Python
`websockets` client speaking the evsock session protocol by hand
(docs/protocol.md): hello/welcome, a join request and its reply, presence,
a chat message reaching both members exactly once, the room policy, and
the HTTP answers for a missing user and an unknown path.

Usage: hub_chat_client.py ws://127.0.0.1:PORT
"""
import asyncio
import json
import sys

import websockets
from websockets.exceptions import InvalidStatus

BASE = sys.argv[1].rstrip("/")
failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    print(("ok   " if cond else "FAIL ") + what)
    if cond:
        passes += 1
    else:
        failures += 1


class Client:
    """One tab: a websockets connection plus the session's counters."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.rx = 0
        self.inbox = []

    @classmethod
    async def login(cls, user):
        ws = await websockets.connect(f"{BASE}/chat?user={user}")
        c = cls(ws)
        await ws.send(json.dumps(["evs/hello", {"v": 1, "rx": 0, "lo": 1}]))
        welcome = await c.recv_event()
        check(
            welcome[0] == "evs/welcome" and welcome[1].get("st") == "new",
            f"{user}: welcome for a new session ({welcome[:2]})",
        )
        return c

    async def recv_event(self, timeout=5):
        """The next application-level envelope (acks and pings handled)."""
        while True:
            if self.inbox:
                return self.inbox.pop(0)
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            batch = frame if frame and isinstance(frame[0], list) else [frame]
            for env in batch:
                meta = env[2] if len(env) > 2 and isinstance(env[2], dict) else {}
                if "id" in meta:
                    if meta["id"] <= self.rx:
                        continue  # duplicate
                    self.rx = meta["id"]
                    await self.ws.send(json.dumps(["evs/ack", None, {"ack": self.rx}]))
                if env[0] == "evs/ping":
                    await self.ws.send(json.dumps(["evs/pong"]))
                elif env[0] != "evs/ack":
                    self.inbox.append(env)

    async def request(self, event, data):
        rid = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps([event, data, {"id": rid, "rq": 5000}]))
        stash = []
        while True:
            env = await self.recv_event()
            if env[0] in ("evs/reply", "evs/rerr") and env[2].get("re") == rid:
                self.inbox[:0] = stash  # other events stay in order for later
                return env[0], env[1]
            stash.append(env)

    async def expect(self, event, timeout=5):
        """Events named `event` until none arrives within 0.3 s after the first."""
        got = []
        deadline = timeout
        while True:
            try:
                env = await self.recv_event(deadline)
            except asyncio.TimeoutError:
                return got
            if env[0] == event:
                got.append(env[1])
                deadline = 0.3


async def main():
    alice = await Client.login("alice")
    kind, data = await alice.request("room/join", "lobby")
    check(kind == "evs/reply" and data.get("room") == "lobby", f"alice joins lobby ({data})")
    bob = await Client.login("bob")
    kind, data = await bob.request("room/join", "lobby")
    check(
        kind == "evs/reply" and sorted(data.get("users", [])) == ["alice", "bob"],
        f"bob joins lobby and sees both users ({data})",
    )
    presence = await alice.expect("room/presence")
    check(
        {"room": "lobby", "user": "bob", "online": True} in presence,
        f"alice sees bob's presence ({presence})",
    )
    kind, data = await bob.request("room/join", "secret")
    check(kind == "evs/rerr", f"the room policy refuses 'secret' to bob ({kind} {data})")

    await alice.ws.send(json.dumps(["chat/send", "hello from alice", {"id": alice.next_id}]))
    alice.next_id += 1
    for who in (alice, bob):
        msgs = await who.expect("chat/msg")
        check(
            msgs == [{"from": "alice", "room": "lobby", "data": "hello from alice"}],
            f"{'alice' if who is alice else 'bob'} gets the message exactly once ({msgs})",
        )
    await bob.ws.close()
    await alice.ws.close()

    for path, status in (("/chat", 401), ("/nowhere?user=x", 404)):
        try:
            ws = await websockets.connect(f"{BASE}{path}")
            await ws.close()
            check(False, f"{path} was accepted")
        except InvalidStatus as e:
            check(e.response.status_code == status, f"{path} gets HTTP {e.response.status_code}")


asyncio.run(main())
print(f"{passes} passed, {failures} failed")
sys.exit(1 if failures else 0)
