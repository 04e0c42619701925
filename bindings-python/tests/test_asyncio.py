"""The asyncio hosts: plain WebSocket and event-vector sessions, over real
sockets on localhost."""

from __future__ import annotations

import asyncio
import functools

import pytest

import evsock
from evsock.asyncio import connect, connect_websocket, serve, serve_websocket


def run(coro_fn):
    """Runs an async test with a hard time limit, so a bug cannot hang CI."""

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 20))

    return wrapper


async def echo(ws):
    async for message in ws:
        await ws.send(message)


@run
async def test_websocket_echo_text_binary_ping_close():
    async with serve_websocket(echo) as server:
        async with connect_websocket(f"ws://127.0.0.1:{server.port}/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xff" * 50_000)
            assert await ws.recv() == b"\x00\xff" * 50_000
            await ws.send_many(["a", b"b", "c"])
            assert [await ws.recv() for _ in range(3)] == ["a", b"b", "c"]
            await asyncio.wait_for(ws.ping(b"p1"), 2)
        assert ws.closed and ws.close_code == 1000
        with pytest.raises(evsock.ConnectionClosed):
            await ws.send("late")


@run
async def test_server_sees_request_and_can_reject():
    seen = []

    def decide(request):
        seen.append((request.path, request.header("x-token")))
        if request.header("x-token") != "good":
            return (401, "bad token")
        return None

    async with serve_websocket(echo, process_request=decide) as server:
        url = f"ws://127.0.0.1:{server.port}/secure"
        with pytest.raises(evsock.ConnectionClosed, match="401"):
            await connect_websocket(url, headers={"X-Token": "bad"})
        async with connect_websocket(url, headers={"X-Token": "good"}) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
    assert seen == [("/secure", "bad"), ("/secure", "good")]


@run
async def test_handler_return_closes_and_error_gives_1011():
    async def bye(ws):
        await ws.send("bye")

    async def broken(ws):
        raise RuntimeError("boom")

    for handler, code in ((bye, 1000), (broken, 1011)):
        async with serve_websocket(handler) as server:
            ws = await connect_websocket(f"ws://127.0.0.1:{server.port}/")
            msgs = [m async for m in ws]
            await ws.wait_closed()
            assert ws.close_code == code
            assert msgs == (["bye"] if code == 1000 else [])


@run
async def test_keepalive_ping_timeout_closes_dead_peer():
    # A raw TCP client that completes the handshake and then never answers
    # pings: the server's engine timers must end the connection.
    closed = asyncio.get_running_loop().create_future()

    async def wait(ws):
        try:
            await ws.recv()
        except evsock.ConnectionClosed:
            pass
        closed.set_result(ws.close_code)

    async with serve_websocket(wait, ping_interval_ms=50, pong_timeout_ms=50) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        c = evsock.ClientConnection("ws://127.0.0.1/", auto_pong=False)
        writer.write(c.data_to_send())
        c.receive_data(await reader.read(4096))
        assert [type(e) for e in c.events()] == [evsock.Open]
        assert await closed == 1011
        writer.close()


@run
async def test_sessions_chat_requests_and_resume():
    peers = set()

    async def chat(peer):
        peers.add(peer)
        peer.on("chat/send", lambda text: [p.send("chat/message", text) for p in peers])
        peer.on("math/add", lambda d: d["a"] + d["b"])

        @peer.on("slow/op")
        async def slow(seconds):
            await asyncio.sleep(seconds)
            return "late"

        await peer.wait_closed()
        peers.discard(peer)

    async with serve(chat) as server:
        url = f"ws://127.0.0.1:{server.port}/chat"
        a = await connect(url)
        b = await connect(url, format="msgpack")
        got: asyncio.Queue = asyncio.Queue()
        b.on("chat/message", got.put_nowait)

        a.send("chat/send", "hello")
        assert await asyncio.wait_for(got.get(), 2) == "hello"
        assert await a.request("math/add", {"a": 2, "b": 40}) == 42
        assert await b.request("math/add", {"a": 1, "b": 1}) == 2

        with pytest.raises(evsock.RequestTimeout) as ei:
            await a.request("slow/op", 1.0, timeout=0.1)
        assert ei.value.kind == "timeout"
        with pytest.raises(evsock.RequestError) as ei:
            await a.request("no/such", None)
        assert ei.value.kind == "remote" and "no handler" in ei.value.data["error"]

        # Cut a's connection under it: it reconnects, resumes the same
        # session, and a reliable send made while down still arrives once.
        sid = a.session_id
        a._proto.transport.abort()
        a.send("chat/send", "while down")
        assert await asyncio.wait_for(got.get(), 5) == "while down"
        assert a.session_id == sid and a.connected
        assert len(peers) == 2

        a.close()
        b.close()
        await asyncio.wait_for(a.wait_closed(), 2)
        await asyncio.wait_for(b.wait_closed(), 2)
        for _ in range(50):
            if not peers:
                break
            await asyncio.sleep(0.02)
        assert not peers


@run
async def test_connect_errors_are_clear():
    with pytest.raises(evsock.InvalidArgumentError, match="ws:// or wss://"):
        await connect_websocket("http://127.0.0.1:1/")
    with pytest.raises(OSError):
        await connect_websocket("ws://127.0.0.1:1/")
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        serve(echo, bogus=1)
    with pytest.raises(TypeError, match="websocket="):
        connect("ws://127.0.0.1:1/", max_frame_size=10)
