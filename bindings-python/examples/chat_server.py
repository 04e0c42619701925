"""A chat server: `python chat_server.py [port]`; clients send "chat/send"."""
import asyncio, sys
from evsock.asyncio import serve

peers = set()

async def chat(peer):  # runs once per session; a client that reconnects keeps its peer
    peers.add(peer)
    peer.on("chat/send", lambda text: [p.send("chat/message", text) for p in peers])
    peer.on("chat/who", lambda _: len(peers))  # a request: the return value is the reply
    await peer.wait_closed()
    peers.discard(peer)

async def main(port):
    async with serve(chat, "127.0.0.1", port) as server:
        print(f"chat on ws://127.0.0.1:{server.port}", flush=True)
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
