"""evsock: a sans-IO WebSocket (RFC 6455) and event-vector engine, in Rust.

The core owns no sockets, threads or clocks. Feed a connection the bytes you
read, write out the bytes it gives back, handle its events, and call
``handle_timeout()`` when ``poll_timeout()`` is due::

    import evsock

    conn = evsock.ServerConnection()
    conn.receive_data(sock.recv(65536))
    for event in conn.events():
        match event:
            case evsock.Request():
                conn.accept()
            case evsock.TextMessage(data):
                conn.send_text(data)          # echo
            case evsock.Closed(code, reason):
                ...
    sock.sendall(conn.data_to_send())

Every ``now`` argument is milliseconds of ``time.monotonic()`` (the clock of
asyncio's ``loop.time()``) and defaults to reading it.

``evsock.asyncio`` holds a ready-made asyncio host: ``serve()`` and
``connect()`` for plain WebSocket messages.
"""

from ._evsock import (
    AcceptConnection,
    BinaryMessage,
    ClientConnection,
    Close,
    Closed,
    Connection,
    ConnectionClosed,
    EvsockError,
    InvalidArgumentError,
    InvalidStateError,
    Open,
    OutboundFullError,
    Ping,
    Pong,
    RejectConnection,
    Request,
    RequestError,
    RequestTimeout,
    ServerConnection,
    SessionError,
    TextMessage,
    __version__,
    now_ms,
)

__all__ = [
    "AcceptConnection",
    "BinaryMessage",
    "ClientConnection",
    "Close",
    "Closed",
    "Connection",
    "ConnectionClosed",
    "EvsockError",
    "InvalidArgumentError",
    "InvalidStateError",
    "Open",
    "OutboundFullError",
    "Ping",
    "Pong",
    "RejectConnection",
    "Request",
    "RequestError",
    "RequestTimeout",
    "ServerConnection",
    "SessionError",
    "TextMessage",
    "__version__",
    "now_ms",
]
