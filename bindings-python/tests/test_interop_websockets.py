"""Interop with the `websockets` library, over real sockets on localhost:
its client against evsock's server, evsock's client against its server, with
and without permessage-deflate; and the session layer carried by a
`websockets` connection."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

import evsock
from evsock.asyncio import connect_websocket, serve_websocket

LARGE = bytes(range(256)) * 4096  # 1 MiB
TEXT = "héllo wörld ✓ " * 1000  # multi-byte UTF-8, compresses well


def run(coro_fn):
    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 30))

    return wrapper


async def evsock_echo(ws):
    async for message in ws:
        if message == "close-4001":
            await ws.close(4001, "asked to")
            return
        await ws.send(message)


@pytest.mark.parametrize("compression", ["deflate", None])
@run
async def test_websockets_client_against_evsock_server(compression):
    async with serve_websocket(evsock_echo, subprotocols=["chat.v1"]) as server:
        url = f"ws://127.0.0.1:{server.port}/echo"
        async with ws_connect(
            url, compression=compression, subprotocols=["chat.v1"], max_size=None
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            # The extension was negotiated exactly when the client offered it.
            ext = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in ext) == (compression == "deflate")
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(TEXT)
            assert await ws.recv() == TEXT
            await ws.send(LARGE)
            assert await ws.recv() == LARGE
            # A fragmented message from websockets arrives whole.
            await ws.send(iter(["frag", "ment", "ed"]))
            assert await ws.recv() == "fragmented"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("close-4001")
            # websockets calls any code but 1000/1001 an error; the handshake
            # itself was clean (close frames both ways).
            with pytest.raises(websockets.ConnectionClosedError) as ei:
                await ws.recv()
            assert (ei.value.rcvd.code, ei.value.rcvd.reason) == (4001, "asked to")
            assert ei.value.sent is not None and ei.value.sent.code == 4001
            assert ws.close_code == 4001 and ws.close_reason == "asked to"


@run
async def test_evsock_server_rejects_a_websockets_client_with_a_status():
    def deny(request):
        return (403, "no entry")

    async with serve_websocket(evsock_echo, process_request=deny) as server:
        with pytest.raises(websockets.InvalidStatus) as ei:
            await ws_connect(f"ws://127.0.0.1:{server.port}/")
        assert ei.value.response.status_code == 403


NEGOTIATED: list[str] = []


async def websockets_echo(ws):
    NEGOTIATED.append(ws.response.headers.get("Sec-WebSocket-Extensions") or "")
    async for message in ws:
        if message == "close-4002":
            await ws.close(4002, "bye now")
            return
        await ws.send(message)


@pytest.mark.parametrize("deflate", [True, False])
@run
async def test_evsock_client_against_websockets_server(deflate):
    async with ws_serve(websockets_echo, "127.0.0.1", 0, max_size=None, compression="deflate") as server:
        port = server.sockets[0].getsockname()[1]
        async with connect_websocket(
            f"ws://127.0.0.1:{port}/", deflate=deflate, max_message_size=4 << 20
        ) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(TEXT)
            assert await ws.recv() == TEXT
            await ws.send(LARGE)
            assert await ws.recv() == LARGE
            await ws.send_many(["a", b"b", "c"])
            assert [await ws.recv() for _ in range(3)] == ["a", b"b", "c"]
            await asyncio.wait_for(ws.ping(b"p"), 5)
            await ws.send("close-4002")
            with pytest.raises(evsock.ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4002 and ws.close_reason == "bye now"
    assert ("permessage-deflate" in NEGOTIATED.pop()) == deflate


@run
async def test_evsock_client_closes_a_websockets_server_cleanly():
    closed = asyncio.get_running_loop().create_future()

    async def handler(ws):
        try:
            await ws.recv()
        except websockets.ConnectionClosedOK as e:
            closed.set_result((e.rcvd.code, e.rcvd.reason))

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect_websocket(f"ws://127.0.0.1:{port}/")
        await ws.close(1000, "done")
        assert await asyncio.wait_for(closed, 5) == (1000, "done")


@run
async def test_session_over_a_websockets_client():
    """The session protocol does not care which WebSocket library carries it:
    an evsock.session.Session client driven over a `websockets` connection
    talks to evsock's session server."""
    from evsock.asyncio import serve
    from evsock.session import Established, Reply, Send, Session

    async def handler(peer):
        peer.on("math/add", lambda d: d["a"] + d["b"])
        await peer.wait_closed()

    async with serve(handler) as server:
        async with ws_connect(f"ws://127.0.0.1:{server.port}/") as ws:
            s = Session.client()
            s.handle_connected()
            req = s.request("math/add", {"a": 40, "b": 2}, timeout_ms=5000)
            seen = []
            while not any(isinstance(o, Reply) for o in seen):
                for out in s.outputs():
                    if isinstance(out, Send):
                        await ws.send(out.message)
                    else:
                        seen.append(out)
                if any(isinstance(o, Reply) for o in seen):
                    break
                s.handle_message(await asyncio.wait_for(ws.recv(), 5))
            assert isinstance(seen[0], Established)
            (reply,) = [o for o in seen if isinstance(o, Reply)]
            assert reply.req == req and reply.data == 42
            # The wire is JSON text, as docs/protocol.md says.
            assert isinstance(s.encode({"x": 1}), str) and json.loads(s.encode({"x": 1})) == {"x": 1}
