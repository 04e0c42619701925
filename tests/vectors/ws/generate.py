#!/usr/bin/env python3
"""Writes the WebSocket connection vectors in this folder.

The expected bytes are built here from RFC 6455's rules, not by running the
engine, so the vectors are a second opinion on the engine's output. The
client vectors need the engine's seeded generator (xoshiro256++ seeded by
splitmix64, see engine/src/rng.rs); it is re-implemented below.

    python3 tests/vectors/ws/generate.py    # rewrites *.json beside it
"""
import base64
import hashlib
import json
import os
import struct
import zlib

M64 = (1 << 64) - 1
HERE = os.path.dirname(os.path.abspath(__file__))


class SeededRng:
    def __init__(self, seed):
        x = seed

        def nxt():
            nonlocal x
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            return z ^ (z >> 31)

        self.s = [nxt() for _ in range(4)]

    def step(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def fill(self, n):
        out = b""
        while len(out) < n:
            out += struct.pack("<Q", self.step())
        return out[:n]


def frame(opcode, payload=b"", fin=True, mask=None, rsv=0):
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask is not None:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def close_payload(code, reason=""):
    return struct.pack(">H", code) + reason.encode()


KEY = b"\x11\x22\x33\x44"
REQUEST = (
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)
RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


def accept_for(key):
    digest = hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest).decode()


def opened(extra_events=None):
    """Steps that take a server through the handshake."""
    return [
        {"input_text": REQUEST, "at": 0,
         "events": [{"type": "request", "path": "/chat", "subprotocols": []}],
         "state": "handshake"},
        {"call": "accept", "subprotocol": None, "transmit_text": RESPONSE,
         "events": [{"type": "open", "subprotocol": None}] + (extra_events or []),
         "state": "open"},
    ]


def closed(code, reason="", clean=False, by_peer=False, error=None):
    return {"type": "closed", "code": code, "reason": reason, "clean": clean,
            "by_peer": by_peer, "error": error}


def hx(b):
    return b.hex()


VECTORS = []


def vector(name, description, steps, role="server", config=None, client=None):
    v = {"name": name, "description": description, "role": role, "config": config or {}}
    if client:
        v["client"] = client
    v["steps"] = steps
    VECTORS.append(v)


vector("server-echo-rfc-hello", "RFC 6455 5.7: a masked 'Hello' arrives, an unmasked one leaves.",
       opened() + [
           {"input": hx(frame(1, b"Hello", mask=bytes([0x37, 0xFA, 0x21, 0x3D]))), "at": 1,
            "events": [{"type": "text", "text": "Hello"}]},
           {"call": "send_text", "text": "Hello", "transmit": hx(frame(1, b"Hello"))},
           {"call": "send_binary", "hex": "00ff", "transmit": hx(frame(2, b"\x00\xff"))},
       ])

vector("server-fragments-with-ping", "A text message in three fragments with a ping between them; the pong leaves at once.",
       opened() + [
           {"input": hx(frame(1, "héll".encode(), fin=False, mask=KEY)
                        + frame(9, b"are you", mask=KEY)
                        + frame(0, b"", fin=False, mask=KEY)
                        + frame(0, "ö".encode(), mask=KEY)), "at": 1,
            "events": [{"type": "ping", "hex": hx(b"are you")}, {"type": "text", "text": "héllö"}],
            "transmit": hx(frame(10, b"are you"))},
       ])

vector("server-split-every-byte", "The same frame fed one byte at a time gives one message.",
       opened() + [{"input": hx(bytes([b])), "at": 2} for b in frame(2, b"\x01\x02\x03", mask=KEY)[:-1]]
       + [{"input": hx(frame(2, b"\x01\x02\x03", mask=KEY)[-1:]), "at": 2,
           "events": [{"type": "binary", "hex": "010203"}]}])

vector("server-peer-closes", "The client closes with 1000; the server echoes the code and is done.",
       opened() + [
           {"input": hx(frame(8, close_payload(1000, "bye"), mask=KEY)), "at": 5,
            "transmit": hx(frame(8, close_payload(1000))),
            "events": [closed(1000, "bye", clean=True, by_peer=True)], "state": "closed",
            "deadline": None},
           {"call": "send_text", "text": "late", "error": "invalid_state"},
       ])

vector("server-closes-first", "The server closes; the client answers; the handshake is clean.",
       opened() + [
           {"call": "close", "code": 1001, "reason": "restart", "transmit": hx(frame(8, close_payload(1001, "restart"))),
            "state": "closing"},
           {"input": hx(frame(1, b"still here", mask=KEY)), "at": 3,
            "events": [{"type": "text", "text": "still here"}]},
           {"input": hx(frame(8, close_payload(1001), mask=KEY)), "at": 4,
            "events": [closed(1001, "restart", clean=True, by_peer=False)], "state": "closed"},
       ])

vector("server-unmasked-frame", "A client frame without a mask fails the connection with 1002.",
       opened() + [
           {"input": hx(frame(1, b"x")), "at": 1,
            "transmit": hx(frame(8, close_payload(1002, "protocol error: client frames must be masked"))),
            "events": [closed(1002, "protocol error: client frames must be masked", error="protocol")],
            "state": "closed"},
       ])

vector("server-reserved-opcode", "Opcode 3 is reserved: 1002.",
       opened() + [
           {"input": hx(frame(3, b"", mask=KEY)), "at": 1,
            "transmit": hx(frame(8, close_payload(1002, "protocol error: reserved opcode 0x3"))),
            "events": [closed(1002, "protocol error: reserved opcode 0x3", error="protocol")]},
       ])

vector("server-invalid-utf8", "Invalid UTF-8 fails with 1007 before the frame is complete.",
       opened() + [
           {"input": hx(frame(1, b"ok\xff" + b"x" * 100, mask=KEY)[:12]), "at": 1,
            "transmit": hx(frame(8, close_payload(1007, "invalid UTF-8 in a text message or close reason"))),
            "events": [closed(1007, "invalid UTF-8 in a text message or close reason", error="invalid_utf8")]},
       ])

vector("server-message-too-big", "A message over max_message_size fails with 1009 as soon as the header says so.",
       opened() + [
           {"input": hx(frame(2, b"\x00" * 11, mask=KEY)[:6]), "at": 1,
            "transmit": hx(frame(8, close_payload(1009, "message exceeds the limit of 10 bytes"))),
            "events": [closed(1009, "message exceeds the limit of 10 bytes", error="message_too_large")]},
       ], config={"max_message_size": 10})

vector("server-bad-close-code", "Close code 1005 may not be sent: 1002.",
       opened() + [
           {"input": hx(frame(8, close_payload(1005), mask=KEY)), "at": 1,
            "transmit": hx(frame(8, close_payload(1002, "protocol error: close code 1005 is not allowed on the wire"))),
            "events": [closed(1002, "protocol error: close code 1005 is not allowed on the wire", error="protocol")]},
       ])

vector("server-not-get", "A POST is answered 405 and the connection ends.",
       [{"input_text": REQUEST.replace("GET", "POST"), "at": 0,
         "transmit_prefix_text": "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n",
         "events": [closed(1006, error="handshake")], "state": "closed"}])

vector("server-old-version", "Sec-WebSocket-Version 8 is answered 426 naming version 13.",
       [{"input_text": REQUEST.replace("Version: 13", "Version: 8"), "at": 0,
         "transmit_prefix_text": "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
         "events": [closed(1006, error="handshake")]}])

vector("server-origin-refused", "An Origin outside the allow-list is answered 403.",
       [{"input_text": REQUEST.replace("\r\n\r\n", "\r\nOrigin: https://evil.example\r\n\r\n"), "at": 0,
         "transmit_prefix_text": "HTTP/1.1 403 Forbidden\r\n",
         "events": [closed(1006, error="handshake")]}],
       config={"origins": ["https://good.example"]})

vector("server-host-rejects", "The host refuses the upgrade with 401 and a body.",
       [{"input_text": REQUEST, "at": 0,
         "events": [{"type": "request", "path": "/chat", "subprotocols": []}]},
        {"call": "reject", "status": 401, "body": "login first",
         "transmit_text": "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Length: 11\r\nConnection: close\r\n\r\nlogin first",
         "events": [closed(1006, error="handshake")], "state": "closed"}])

vector("server-subprotocol", "The configured subprotocol the client also offers is selected.",
       [{"input_text": REQUEST.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: v1.chat, v2.chat\r\n\r\n"), "at": 0,
         "events": [{"type": "request", "path": "/chat", "subprotocols": ["v1.chat", "v2.chat"]}]},
        {"call": "accept", "subprotocol": None,
         "transmit_text": RESPONSE.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: v2.chat\r\n\r\n"),
         "events": [{"type": "open", "subprotocol": "v2.chat"}]}],
       config={"subprotocols": ["v2.chat"]})

vector("server-keepalive", "Pings go out on the interval; a pong re-arms the timer; silence ends the connection with 1011.",
       opened() + [
           {"timeout": True, "at": 999, "transmit": ""},
           {"timeout": True, "at": 1000, "transmit": hx(frame(9, struct.pack(">Q", 1)))},
           {"input": hx(frame(10, struct.pack(">Q", 1), mask=KEY)), "at": 1100,
            "events": [{"type": "pong", "hex": hx(struct.pack(">Q", 1))}], "deadline": 2100},
           {"timeout": True, "at": 2100, "transmit": hx(frame(9, struct.pack(">Q", 2))), "deadline": 2600},
           {"timeout": True, "at": 2600,
            "transmit": hx(frame(8, close_payload(1011, "no pong received in time"))),
            "events": [closed(1011, "no pong received in time", error="pong_timeout")], "deadline": None},
       ], config={"ping_interval_ms": 1000, "pong_timeout_ms": 500})

vector("server-idle-timeout", "Silence past idle_timeout starts a 1001 close; no answer ends it after close_timeout.",
       opened() + [
           {"timeout": True, "at": 500, "transmit": hx(frame(8, close_payload(1001, "idle timeout"))),
            "state": "closing", "deadline": 600},
           {"timeout": True, "at": 600,
            "events": [closed(1001, "idle timeout", error="close_timeout")]},
       ], config={"idle_timeout_ms": 500, "close_timeout_ms": 100})

vector("server-eof", "TCP ends without a close frame: abnormal closure 1006.",
       opened() + [{"eof": True, "at": 9, "events": [closed(1006, error="unexpected_eof")]}])

vector("server-handshake-timeout", "A request that never completes ends at the handshake deadline.",
       [{"input_text": "GET / HTTP/1.1\r\n", "at": 0, "deadline": 100, "state": "handshake"},
        {"call": "send_text", "text": "too early", "error": "invalid_state"},
        {"timeout": True, "at": 100, "events": [closed(1006, error="handshake_timeout")], "transmit": ""}],
       config={"handshake_timeout_ms": 100})

# Client role: the key and mask keys come from SeededRng(7).
rng = SeededRng(7)
key = base64.b64encode(rng.fill(16)).decode()
client_request = (
    f"GET /chat HTTP/1.1\r\nHost: example.com:9001\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n\r\n"
)
server_response = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n"
)
mask1 = rng.fill(4)
mask2 = rng.fill(4)
vector("client-conversation", "A client opens, sends masked frames, receives, and closes cleanly after the server ends TCP.",
       [{"timeout": True, "at": 0, "transmit_text": client_request, "state": "handshake"},
        {"input_text": server_response, "at": 1, "events": [{"type": "open", "subprotocol": None}], "state": "open"},
        {"call": "send_text", "text": "hi", "transmit": hx(frame(1, b"hi", mask=mask1))},
        {"input": hx(frame(1, b"hello back")), "at": 2, "events": [{"type": "text", "text": "hello back"}]},
        {"call": "close", "code": 1000, "reason": "", "transmit": hx(frame(8, close_payload(1000), mask=mask2)),
         "state": "closing"},
        {"input": hx(frame(8, close_payload(1000))), "at": 3, "events": [], "state": "closing"},
        {"eof": True, "at": 4, "events": [closed(1000, clean=True)], "state": "closed"}],
       role="client", client={"host": "example.com:9001", "path": "/chat", "subprotocols": [], "seed": 7})

rng = SeededRng(7)
key = base64.b64encode(rng.fill(16)).decode()
vector("client-bad-accept", "A 101 whose Sec-WebSocket-Accept does not match the key is refused.",
       [{"input_text": RESPONSE, "at": 1, "events": [closed(1006, error="handshake")], "state": "closed"}],
       role="client", client={"host": "example.com:9001", "path": "/chat", "subprotocols": [], "seed": 7})

vector("client-masked-server-frame", "A masked frame from a server fails the connection with 1002.",
       [{"input_text": server_response, "at": 1, "events": [{"type": "open", "subprotocol": None}]},
        {"input": hx(frame(1, b"x", mask=KEY)), "at": 2,
         "events": [closed(1002, "protocol error: server frames must not be masked", error="protocol")]}],
       role="client", client={"host": "example.com:9001", "path": "/chat", "subprotocols": [], "seed": 7})

def deflate_raw(data, level=6):
    """permessage-deflate payload: raw deflate, sync-flushed, tail stripped."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
AGREED = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"


def opened_deflate(extra_request_header=OFFER, agreed=AGREED):
    return [
        {"input_text": REQUEST.replace("\r\n\r\n", "\r\n" + extra_request_header + "\r\n"), "at": 0,
         "events": [{"type": "request", "path": "/chat", "subprotocols": []}]},
        {"call": "accept", "subprotocol": None,
         "transmit_text": RESPONSE.replace("\r\n\r\n", "\r\n" + agreed + "\r\n"),
         "events": [{"type": "open", "subprotocol": None}]},
    ]


def rsv1(frame_bytes):
    return bytes([frame_bytes[0] | 0x40]) + frame_bytes[1:]


# RFC 7692 7.2.3.1: "Hello" compressed is f2 48 cd c9 c9 07 00.
assert deflate_raw(b"Hello") == bytes.fromhex("f248cdc9c90700")
vector("server-deflate-rfc-hello", "permessage-deflate is negotiated; the RFC 7692 compressed 'Hello' arrives, in one frame and then in two fragments; short replies go uncompressed.",
       opened_deflate() + [
           {"input": hx(rsv1(frame(1, bytes.fromhex("f248cdc9c90700"), mask=KEY))), "at": 1,
            "events": [{"type": "text", "text": "Hello"}]},
           {"input": hx(rsv1(frame(1, bytes.fromhex("f248cd"), fin=False, mask=KEY))
                        + frame(0, bytes.fromhex("c9c90700"), mask=KEY)), "at": 2,
            "events": [{"type": "text", "text": "Hello"}]},
           {"call": "send_text", "text": "Hello", "transmit": hx(frame(1, b"Hello"))},
       ])

big_text = ("evsock " * 2000).encode()
vector("server-deflate-large", "A 14 KB text compressed by another zlib inflates back exactly.",
       opened_deflate() + [
           {"input": hx(rsv1(frame(1, deflate_raw(big_text), mask=KEY))), "at": 1,
            "events": [{"type": "text", "text": big_text.decode()}]},
       ])

vector("server-deflate-bomb", "A small compressed frame that would inflate to 1 MiB is stopped at max_message_size with 1009.",
       opened_deflate() + [
           {"input": hx(rsv1(frame(2, deflate_raw(b"\x00" * (1 << 20), 9), mask=KEY))), "at": 1,
            "transmit": hx(frame(8, close_payload(1009, "message exceeds the limit of 4096 bytes"))),
            "events": [closed(1009, "message exceeds the limit of 4096 bytes", error="message_too_large")]},
       ], config={"max_message_size": 4096})

bad_utf8 = deflate_raw(b"abc\xff" + b"x" * 100)
vector("server-deflate-invalid-utf8", "Invalid UTF-8 inside a compressed text message fails with 1007.",
       opened_deflate() + [
           {"input": hx(rsv1(frame(1, bad_utf8, mask=KEY))), "at": 1,
            "transmit": hx(frame(8, close_payload(1007, "invalid UTF-8 in a text message or close reason"))),
            "events": [closed(1007, "invalid UTF-8 in a text message or close reason", error="invalid_utf8")]},
       ])

vector("server-deflate-rsv1-on-continuation", "RSV1 on a continuation frame is a protocol error even with deflate.",
       opened_deflate() + [
           {"input": hx(rsv1(frame(1, bytes.fromhex("f248cd"), fin=False, mask=KEY))
                        + rsv1(frame(0, bytes.fromhex("c9c90700"), mask=KEY))), "at": 1,
            "transmit": hx(frame(8, close_payload(1002, "protocol error: reserved bits 0b100 set"))),
            "events": [closed(1002, "protocol error: reserved bits 0b100 set", error="protocol")]},
       ])

vector("server-rsv1-without-deflate", "Without negotiation, RSV1 is a protocol error.",
       opened() + [
           {"input": hx(rsv1(frame(1, bytes.fromhex("f248cdc9c90700"), mask=KEY))), "at": 1,
            "transmit": hx(frame(8, close_payload(1002, "protocol error: reserved bits 0b100 set"))),
            "events": [closed(1002, "protocol error: reserved bits 0b100 set", error="protocol")]},
       ])

vector("server-deflate-off", "With deflate turned off, an offer is ignored and the response names no extension.",
       opened_deflate(agreed="") , config={"deflate": False})

vector("server-deflate-bad-offer", "A malformed offer is declined, not refused: the connection opens without compression.",
       opened_deflate(extra_request_header="Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n",
                      agreed=""))

rng = SeededRng(7)
rng.fill(16)
mask1 = rng.fill(4)
vector("client-deflate", "The server agrees to deflate; the client inflates what it receives and compresses what is long enough.",
       [{"input_text": server_response.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"),
         "at": 1, "events": [{"type": "open", "subprotocol": None}]},
        {"input": hx(rsv1(frame(1, bytes.fromhex("f248cdc9c90700")))), "at": 2,
         "events": [{"type": "text", "text": "Hello"}]},
        {"call": "send_text", "text": "short", "transmit": hx(frame(1, b"short", mask=mask1))}],
       role="client", client={"host": "example.com:9001", "path": "/chat", "subprotocols": [], "seed": 7})

vector("client-deflate-unoffered-parameter", "A response with a parameter we did not offer fails the handshake.",
       [{"input_text": server_response.replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8\r\n\r\n"),
         "at": 1, "events": [closed(1006, error="handshake")]}],
       role="client", client={"host": "example.com:9001", "path": "/chat", "subprotocols": [], "seed": 7})

if __name__ == "__main__":
    for old in os.listdir(HERE):
        if old.endswith(".json"):
            os.remove(os.path.join(HERE, old))
    for v in VECTORS:
        with open(os.path.join(HERE, v["name"] + ".json"), "w") as f:
            json.dump(v, f, indent=1, ensure_ascii=False)
            f.write("\n")
    print(f"wrote {len(VECTORS)} vectors")
