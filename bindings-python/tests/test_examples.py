"""The chat server in examples/ runs as shown in the README, and the
README's code is valid Python that matches the example file."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import re
import sys

import pytest

import evsock
from evsock.asyncio import connect

HERE = pathlib.Path(__file__).resolve().parent
PKG = HERE.parent
CHAT = PKG / "examples" / "chat_server.py"
README = PKG / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_blocks_parse_and_show_the_example():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3, "README lost its code examples"
    for b in blocks:
        ast.parse(b)  # every snippet is at least valid Python
    # The chat server in the README is the file the next test runs.
    assert CHAT.read_text() in blocks, "README's chat server differs from examples/chat_server.py"


def test_chat_server_example_runs():
    async def scenario() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CHAT), "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            m = re.fullmatch(r"chat on (ws://127\.0\.0\.1:\d+)\n", line)
            assert m, f"unexpected first line {line!r}"
            url = m.group(1)
            alice = await connect(url)
            bob = await connect(url, format="msgpack")
            got_a: asyncio.Queue = asyncio.Queue()
            got_b: asyncio.Queue = asyncio.Queue()
            alice.on("chat/message", got_a.put_nowait)
            bob.on("chat/message", got_b.put_nowait)
            assert await alice.request("chat/who", None, timeout=5) == 2
            alice.send("chat/send", "hi from alice")
            bob.send("chat/send", {"text": "hi from bob", "n": 2})
            for q in (got_a, got_b):
                seen = {repr(await asyncio.wait_for(q.get(), 5)) for _ in range(2)}
                assert seen == {repr("hi from alice"), repr({"text": "hi from bob", "n": 2})}
            # Bob's connection drops: the engine reconnects and resumes, and a
            # message sent meanwhile is delivered once.
            bob._proto.transport.abort()
            alice.send("chat/send", "while bob was away")
            assert await asyncio.wait_for(got_b.get(), 10) == "while bob was away"
            bob.close()
            await asyncio.wait_for(bob.wait_closed(), 5)
            for _ in range(100):
                if await alice.request("chat/who", None, timeout=5) == 1:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the server kept bob after he closed")
            alice.close()
            await asyncio.wait_for(alice.wait_closed(), 5)
            assert proc.returncode is None, "server exited early"
        finally:
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
            err = (await proc.stderr.read()).decode()
            assert "Traceback" not in err or "KeyboardInterrupt" in err, err

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert evsock.__version__


def readme_block(starting: str) -> str:
    (block,) = [b for b in python_blocks(README.read_text()) if b.lstrip().startswith(starting)]
    return block


def test_readme_session_snippet_runs():
    # The snippet asserts what each side saw.
    exec(compile(readme_block("from evsock.session"), "README session snippet", "exec"), {})


def test_readme_sans_io_snippet_serves_a_socket():
    import socket
    import threading

    ns: dict = {}
    exec(compile(readme_block("import socket"), "README sans-IO snippet", "exec"), ns)

    def talk(path: str) -> list:
        server_sock, client_sock = socket.socketpair()
        t = threading.Thread(target=ns["serve_one"], args=(server_sock,), daemon=True)
        t.start()
        client_sock.settimeout(10)
        c = evsock.ClientConnection(f"ws://example.com{path}", timers=False)
        seen: list = []
        client_sock.sendall(c.data_to_send())
        asked = False
        while not c.closed:
            c.receive_data(client_sock.recv(65536))
            for ev in c.events():
                seen.append(ev)
                if isinstance(ev, evsock.Open) and not asked:
                    c.send_text("ping?")
                    asked = True
                elif isinstance(ev, evsock.TextMessage) and len(seen) == 3:
                    c.close(1000, "bye")
            out = c.data_to_send()
            if out:
                client_sock.sendall(out)
        client_sock.close()
        t.join(10)
        assert not t.is_alive()
        server_sock.close()
        return seen

    assert talk("/echo") == [
        evsock.Open(),
        evsock.TextMessage("ping?"),
        evsock.TextMessage("ping?"),
        evsock.Closed(1000, "bye", by_peer=False, clean=True),
    ]
    (closed,) = talk("/other")
    assert isinstance(closed, evsock.Closed) and closed.error == "handshake"
    assert "404" in (closed.error_message or "")
