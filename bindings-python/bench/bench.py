"""Benchmark: evsock against wsproto and websockets' sans-IO protocol.

Every library handles the same bytes (permessage-deflate is off everywhere): one blob of masked client frames is
built once and fed to each server in 64 KiB reads (as a socket would hand
them over), and each server frames the same messages for sending. Only the
protocol work is timed: no sockets, no event loop.

    python bench.py            # full run
    python bench.py --quick    # a few seconds, for CI

Prints throughput per library and the ratio evsock / other (above 1 means
evsock is faster). Ratios are informational; the script never fails on them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import evsock

try:
    import wsproto
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection as WpAccept
    from wsproto.events import BytesMessage as WpBytes
    from wsproto.events import Request as WpRequest
    from wsproto.events import TextMessage as WpText
except ImportError:  # pragma: no cover - reported below
    wsproto = None

try:
    import websockets
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri
except ImportError:  # pragma: no cover - reported below
    websockets = None

READ = 64 * 1024
URL = "ws://bench.example/ws"


# ------------------------------------------------------------- workloads ---


class Workload:
    def __init__(self, name: str, count: int, size: int, text: bool):
        self.name = name
        self.count = count
        self.size = size
        self.text = text
        if text:
            self.message: str | bytes = ("evsock-" * (size // 7 + 1))[:size]
        else:
            self.message = bytes(range(256)) * (size // 256) + bytes(size % 256)
        self.handshake, self.frames = self._client_bytes()
        self.reads = [self.frames[i : i + READ] for i in range(0, len(self.frames), READ)]

    def _client_bytes(self) -> tuple[bytes, bytes]:
        """The upgrade request and the masked frames, from a seeded client."""
        c = evsock.ClientConnection(URL, seed=42, timers=False, deflate=False, max_message_size=64 << 20)
        handshake = c.data_to_send()
        s = evsock.ServerConnection(timers=False, deflate=False)
        s.receive_data(handshake)
        for ev in s.events():
            if isinstance(ev, evsock.Request):
                s.accept()
        c.receive_data(s.data_to_send())
        list(c.events())
        out = bytearray()
        for _ in range(self.count):
            if self.text:
                c.send_text(self.message)
            else:
                c.send_binary(self.message)
            out += c.data_to_send()
        return handshake, bytes(out)

    @property
    def payload_bytes(self) -> int:
        return self.count * self.size


# ------------------------------------------------------------- contenders ---
# Each contender builds a closure per direction; only the closure is timed.
# recv: feed the reads, count whole messages. send: frame every message as a
# server and take the bytes a host would write; timed runs drop them at once
# (as a host does once they are written) and count them; one untimed run with
# keep=True returns them, to check every library framed the same bytes.
# Keeping 200 MB of output alive inside the timing would measure page faults
# rather than framing. client send: the same with masking.


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def evsock_server(w: Workload) -> evsock.ServerConnection:
    s = evsock.ServerConnection(
        timers=False, deflate=False, max_message_size=64 << 20, max_frame_size=64 << 20
    )
    s.receive_data(w.handshake)
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    s.data_to_send()
    return s


def evsock_recv(w: Workload) -> Callable[[], int]:
    s = evsock_server(w)

    def run() -> int:
        n = 0
        for chunk in w.reads:
            s.receive_data(chunk, 0)
            for _ in s.events():
                n += 1
        return n

    return run


def evsock_send(w: Workload) -> Callable[..., int | list[bytes]]:
    s = evsock_server(w)
    send = s.send_text if w.text else s.send_binary

    def run(keep: bool = False) -> int | list[bytes]:
        out = []
        total = 0
        for _ in range(w.count):
            send(w.message)
            b = s.data_to_send()
            total += len(b)
            if keep:
                out.append(b)
        return out if keep else total

    return run


#: The batch API queues a slice of messages per call and the host writes the
#: result, about a socket write's worth at a time. 64 KiB slices measured
#: fastest (4 KiB messages: 7.5 GB/s, against 5.0 at 256 KiB and 2.6 at
#: 4 MiB, where each joined output is a fresh large allocation).
BATCH_BYTES = 64 << 10


def evsock_send_batch(w: Workload) -> Callable[..., int | list[bytes]]:
    s = evsock_server(w)
    per = max(1, min(w.count, BATCH_BYTES // max(1, w.size)))
    batches = [[w.message] * min(per, w.count - i) for i in range(0, w.count, per)]

    def run(keep: bool = False) -> int | list[bytes]:
        out = []
        total = 0
        for batch in batches:
            s.send_messages(batch)
            b = s.data_to_send()
            total += len(b)
            if keep:
                out.append(b)
        return out if keep else total

    return run


def evsock_csend(w: Workload) -> Callable[[], int]:
    c = evsock.ClientConnection(URL, seed=1, timers=False, deflate=False)
    s = evsock.ServerConnection(timers=False, deflate=False)
    s.receive_data(c.data_to_send())
    for ev in s.events():
        if isinstance(ev, evsock.Request):
            s.accept()
    c.receive_data(s.data_to_send())
    list(c.events())
    send = c.send_text if w.text else c.send_binary

    def run() -> int:
        total = 0
        for _ in range(w.count):
            send(w.message)
            total += len(c.data_to_send())
        return total

    return run


def wsproto_server(w: Workload) -> WSConnection:
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(w.handshake)
    for ev in ws.events():
        if isinstance(ev, WpRequest):
            ws.send(WpAccept())
    return ws


def wsproto_recv(w: Workload) -> Callable[[], int]:
    ws = wsproto_server(w)

    def run() -> int:
        n = 0
        for chunk in w.reads:
            ws.receive_data(chunk)
            for ev in ws.events():
                # wsproto hands out large messages in pieces.
                if ev.message_finished:
                    n += 1
        return n

    return run


def wsproto_send(w: Workload) -> Callable[..., int | list[bytes]]:
    ws = wsproto_server(w)
    cls = WpText if w.text else WpBytes

    def run(keep: bool = False) -> int | list[bytes]:
        out = []
        total = 0
        for _ in range(w.count):
            b = ws.send(cls(data=w.message))
            total += len(b)
            if keep:
                out.append(b)
        return out if keep else total

    return run


def wsproto_csend(w: Workload) -> Callable[[], int]:
    from wsproto.events import Request as R

    c = WSConnection(ConnectionType.CLIENT)
    hs = c.send(R(host="bench.example", target="/ws"))
    s = WSConnection(ConnectionType.SERVER)
    s.receive_data(hs)
    for ev in s.events():
        if isinstance(ev, WpRequest):
            c.receive_data(s.send(WpAccept()))
    list(c.events())
    cls = WpText if w.text else WpBytes

    def run() -> int:
        total = 0
        for _ in range(w.count):
            total += len(c.send(cls(data=w.message)))
        return total

    return run


def websockets_server(w: Workload) -> ServerProtocol:
    p = ServerProtocol(max_size=None)
    p.receive_data(w.handshake)
    (request,) = p.events_received()
    p.send_response(p.accept(request))
    p.data_to_send()
    return p


def websockets_recv(w: Workload) -> Callable[[], int]:
    p = websockets_server(w)

    def run() -> int:
        n = 0
        for chunk in w.reads:
            p.receive_data(chunk)
            for frame in p.events_received():
                # Unfragmented messages: one frame each. Decode text as the
                # high-level API would.
                if frame.opcode is Opcode.TEXT:
                    frame.data.decode()
                n += 1
        return n

    return run


def websockets_send(w: Workload) -> Callable[..., int | list[bytes]]:
    p = websockets_server(w)
    send = (lambda m: p.send_text(m.encode())) if w.text else p.send_binary

    def run(keep: bool = False) -> int | list[bytes]:
        out = []
        total = 0
        for _ in range(w.count):
            send(w.message)
            # A host hands this list to transport.writelines(): no join needed.
            for b in p.data_to_send():
                total += len(b)
                if keep:
                    out.append(b)
        return out if keep else total

    return run


def websockets_csend(w: Workload) -> Callable[[], int]:
    c = ClientProtocol(parse_uri(URL), max_size=None)
    c.send_request(c.connect())
    s = ServerProtocol(max_size=None)
    for chunk in c.data_to_send():
        s.receive_data(chunk)
    (request,) = s.events_received()
    s.send_response(s.accept(request))
    for chunk in s.data_to_send():
        c.receive_data(chunk)
    c.events_received()

    def run() -> int:
        total = 0
        for _ in range(w.count):
            if w.text:
                c.send_text(w.message.encode())
            else:
                c.send_binary(w.message)
            total += sum(len(b) for b in c.data_to_send())
        return total

    return run


# ------------------------------------------------------------------ main ---


def fmt_rate(seconds: float, w: Workload) -> str:
    if w.size >= 4096:
        return f"{w.payload_bytes / seconds / 1e6:9.1f} MB/s"
    return f"{w.count / seconds / 1e3:9.1f} k msg/s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for CI")
    args = ap.parse_args(argv)

    if args.quick:
        workloads = [
            Workload("small text (32 B)", 20_000, 32, True),
            Workload("large binary (1 MiB)", 16, 1 << 20, False),
        ]
        repeat = 3
    else:
        workloads = [
            Workload("small text (32 B)", 200_000, 32, True),
            Workload("medium binary (4 KiB)", 50_000, 4096, False),
            Workload("large binary (1 MiB)", 128, 1 << 20, False),
        ]
        repeat = 5

    contenders: dict[str, dict[str, Callable[[Workload], Callable[[], object]]]] = {
        "evsock": {"recv": evsock_recv, "send": evsock_send, "client send": evsock_csend},
    }
    if wsproto is not None:
        contenders["wsproto"] = {"recv": wsproto_recv, "send": wsproto_send, "client send": wsproto_csend}
    else:
        print("wsproto is not installed; skipping it", file=sys.stderr)
    if websockets is not None:
        contenders["websockets"] = {
            "recv": websockets_recv,
            "send": websockets_send,
            "client send": websockets_csend,
        }
    else:
        print("websockets is not installed; skipping it", file=sys.stderr)

    versions = [f"evsock {evsock.__version__}"]
    if wsproto is not None:
        versions.append(f"wsproto {getattr(wsproto, '__version__', '?')}")
    if websockets is not None:
        versions.append(f"websockets {websockets.__version__} (sans-IO protocol)")
    print(f"Python {sys.version.split()[0]}; " + ", ".join(versions))
    print(f"{'workload':<24} {'direction':<12} " + " ".join(f"{n:>17}" for n in contenders) + "   ratios (evsock / other)")

    for w in workloads:
        for direction in ("recv", "send", "client send"):
            times: dict[str, float] = {}
            results: dict[str, object] = {}
            for name, fns in contenders.items():
                t, r = timed(fns[direction](w), repeat)
                times[name] = t
                results[name] = r
            # Same messages in, same bytes out.
            if direction == "recv":
                for name, r in results.items():
                    assert r == w.count, f"{name} received {r} of {w.count} messages"
            elif direction == "send":
                ref = b"".join(evsock_send(w)(True))  # type: ignore[arg-type]
                assert results["evsock"] == len(ref)
                for name, fns in contenders.items():
                    kept = b"".join(fns[direction](w)(True))  # type: ignore[call-arg]
                    assert kept == ref, f"{name} framed the messages differently"
                    assert results[name] == len(ref), f"{name} counted {results[name]} bytes"
            ratios = "  ".join(
                f"{times[n] / times['evsock']:5.1f}x vs {n}" for n in contenders if n != "evsock"
            )
            print(
                f"{w.name:<24} {direction:<12} "
                + " ".join(f"{fmt_rate(times[n], w):>17}" for n in contenders)
                + "   "
                + ratios
            )
        # The batch API: one call queues every message.
        t, out = timed(evsock_send_batch(w), repeat)
        assert b"".join(evsock_send_batch(w)(True)) == ref  # type: ignore[arg-type]
        print(f"{w.name:<24} {'send batch':<12} {fmt_rate(t, w):>17}   (evsock send_messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
