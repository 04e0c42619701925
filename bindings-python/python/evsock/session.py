"""The evsock session layer: event vectors ``[event-id, data]`` with
acknowledged delivery, request/reply, de-duplication and resume, over any
message transport (normally one WebSocket connection at a time).

A :class:`Session` is sans-IO. The host reports transport changes and
messages, and drains :meth:`Session.outputs` after every call::

    s = Session.client()
    s.handle_connected()               # transport open: the hello is queued
    for out in s.outputs():
        match out:
            case Send(message):        # str: a text message, bytes: binary
                ws.send(message)
            case Established(session_id, resumed): ...
            case Message(event, data): ...
            case Request(): s.reply(out.req, {"ok": True})
            case Reconnect(): ...      # open a new transport, handle_connected()

The wire format is ``docs/protocol.md`` in the repository. ``evsock.asyncio``
runs sessions over WebSocket connections for you.
"""

from ._evsock import Session
from ._evsock import SessionCloseTransport as CloseTransport
from ._evsock import SessionClosed as Closed
from ._evsock import SessionError as SessionError
from ._evsock import SessionErrorEvent as Error
from ._evsock import SessionEstablished as Established
from ._evsock import SessionExpired as Expired
from ._evsock import SessionGap as Gap
from ._evsock import SessionHello as Hello
from ._evsock import SessionMessage as Message
from ._evsock import SessionReconnect as Reconnect
from ._evsock import SessionReply as Reply
from ._evsock import SessionRequest as Request
from ._evsock import SessionRequestFailed as RequestFailed
from ._evsock import SessionReset as Reset
from ._evsock import SessionSend as Send
from ._evsock import (
    decode,
    encode,
    encode_go_away,
    new_session_id,
    peek_hello,
    session_settings,
)


__all__ = [
    "CloseTransport",
    "Closed",
    "Error",
    "Established",
    "Expired",
    "Gap",
    "Hello",
    "Message",
    "Reconnect",
    "Reply",
    "Request",
    "RequestFailed",
    "Reset",
    "Send",
    "Session",
    "SessionError",
    "decode",
    "encode",
    "encode_go_away",
    "new_session_id",
    "peek_hello",
    "session_settings",
]
