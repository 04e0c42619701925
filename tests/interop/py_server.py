#!/usr/bin/env python3
"""Echo server built on the `websockets` library, used as a peer for evsock's
client role.

Usage: py_server.py HOST PORT

Every text message is echoed as text and every binary message as binary; a
close frame is answered with the same code (the library's default). The
"chat" subprotocol is selected when offered. Prints "ready" once listening.
With INTEROP_DEFLATE=1 it accepts permessage-deflate and closes any
connection that did not negotiate it with code 4000, which fails evsock's
echo client.
"""
import asyncio
import os
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def pick_subprotocol(_conn, offered):
    return "chat" if "chat" in offered else None


DEFLATE = os.environ.get("INTEROP_DEFLATE") == "1"


async def echo(ws):
    if DEFLATE and [type(e).__name__ for e in ws.protocol.extensions] != ["PerMessageDeflate"]:
        await ws.close(4000, "permessage-deflate was not negotiated")
        return
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(host, port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        host,
        port,
        select_subprotocol=pick_subprotocol,
        compression="deflate" if DEFLATE else None,
        max_size=64 * 1024 * 1024,
        max_queue=None,
        ping_interval=None,
    ):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: py_server.py HOST PORT")
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
