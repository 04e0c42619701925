# -*- coding: utf-8 -*-
"""Run `wstest` (Python 2.7) with every listening socket bound to 127.0.0.1.

autobahn 0.10.9's listenWS() binds to all interfaces by default; the harness
only ever talks over loopback, so the fuzzingserver is pinned there too.
Usage: <venv>/bin/python wstest_loopback.py <wstest arguments...>
"""
import sys

import autobahn.twisted.websocket as _ws

_listen_ws = _ws.listenWS


def _listen_ws_loopback(factory, contextFactory=None, backlog=50, interface='127.0.0.1'):
    return _listen_ws(factory, contextFactory, backlog, interface or '127.0.0.1')


_ws.listenWS = _listen_ws_loopback

import autobahntestsuite.fuzzing as _fuzzing  # noqa: E402  (must follow the patch)

_fuzzing.listenWS = _listen_ws_loopback

from autobahntestsuite.wstest import run  # noqa: E402

if __name__ == '__main__':
    sys.argv[0] = 'wstest'
    sys.exit(run())
