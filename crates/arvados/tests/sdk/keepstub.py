# cibox's own support module for the Arvados Python SDK test suite: the
# `keepstub` helper test_keep_client.py imports (the sdist lacks it).
"""A tiny in-process Keep server for timeout tests.

StubKeepServers is a TestCase mixin: setUp() starts a threaded HTTP server
on a free loopback port and points `self.api_client` (a mock) at it as the
only Keep service.  The server stores PUT blocks in memory by MD5, answers
GET and HEAD, and can be slowed down: `server.setdelays(...)` sleeps at
named points of each request, `server.setbandwidth(bps)` paces transfers.
"""

import hashlib
import http.server
import os
import re
import socketserver
import threading
import time

from . import arvados_testutil as tutil

_DEBUG = bool(os.environ.get('ARVADOS_DEBUG'))

# Where a request can be made to wait (seconds), in the order they happen.
DELAY_POINTS = (
    'request',         # before the request line and headers are read
    'request_body',    # before the body is read (or 100 Continue is sent)
    'response',        # before the status line and headers are sent
    'response_body',   # before the response body is sent
    'response_close',  # after the body, before the handler returns
    'mid_write',       # once, after a second's worth of body has been sent
    'mid_read',        # once, after a second's worth of body has been read
)

_HASH = re.compile(r'[0-9a-f]{32}')


def _sleep_for(seconds):
    """Sleep at least `seconds`, even if woken early."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(left)


class StubServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        self.store = {}
        self.delays = {point: 0 for point in DELAY_POINTS}
        self.bandwidth = None
        super().__init__(*args, **kwargs)

    def setdelays(self, **delays):
        """Set the delay (seconds) at the named points for later requests."""
        for point, seconds in delays.items():
            if point not in self.delays:
                raise KeyError('unknown delay point {!r}'.format(point))
            self.delays[point] = seconds

    def setbandwidth(self, bandwidth):
        """Pace later transfers at `bandwidth` bytes per second."""
        self.bandwidth = float(bandwidth)

    def pause(self, point):
        _sleep_for(self.delays[point])


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        if _DEBUG:
            super().log_message(format, *args)

    def handle(self):
        try:
            super().handle()
        except Exception:
            # A client giving up mid-request (the point of a timeout test)
            # is normal here.
            if _DEBUG:
                raise

    def finish(self):
        try:
            super().finish()
        except Exception:
            if _DEBUG:
                raise

    def handle_one_request(self):
        self._continued = False
        self.server.pause('request')
        super().handle_one_request()

    def handle_expect_100(self):
        self.server.pause('request_body')
        self._continued = True
        return super().handle_expect_100()

    # Paced transfers.  With no bandwidth limit and no mid-transfer delay
    # the data goes in one piece.
    def _paced(self, total, step_fn, mid_point):
        server = self.server
        if server.bandwidth is None and not server.delays[mid_point]:
            step_fn(total)
            return
        rate = server.bandwidth
        chunk = int(rate / 4) if rate else 0
        chunk = chunk or 32768
        done = 0
        paused = False
        start = time.monotonic()
        stall = 0.0
        while done < total:
            if not paused and rate is not None and done > rate:
                server.pause(mid_point)
                stall += server.delays[mid_point]
                paused = True
            n = min(chunk, total - done)
            step_fn(n)
            done += n
            if rate:
                due = start + stall + done / rate
                _sleep_for(due - time.monotonic())

    def _send_body(self, data):
        view = memoryview(data)
        sent = [0]

        def step(n):
            self.wfile.write(view[sent[0]:sent[0] + n])
            sent[0] += n
        self._paced(len(data), step, 'mid_write')

    def _read_body(self, length):
        parts = []

        def step(n):
            parts.append(self.rfile.read(n))
        self._paced(length, step, 'mid_read')
        return b''.join(parts)

    def _locator_hash(self):
        found = _HASH.search(self.path)
        return found.group(0) if found else None

    def _reply_empty(self, code):
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True

    def _stored_block(self):
        """After the response pause: the block the path names, its 200 headers sent; or None,
        with 422 (no hash in the path) or 404 (not stored) sent."""
        self.server.pause('response')
        digest = self._locator_hash()
        if digest is None:
            return self._reply_empty(422)
        if digest not in self.server.store:
            return self._reply_empty(404)
        data = self.server.store[digest]
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Connection', 'close')
        self.end_headers()
        return data

    def do_GET(self):
        data = self._stored_block()
        if data is None:
            return
        self.server.pause('response_body')
        self._send_body(data)
        self.server.pause('response_close')
        self.close_connection = True

    def do_HEAD(self):
        if self._stored_block() is None:
            return
        self.server.pause('response_close')
        self.close_connection = True

    def do_PUT(self):
        if not self._continued:
            self.server.pause('request_body')
        length = int(self.headers.get('Content-Length') or 0)
        data = self._read_body(length)
        digest = hashlib.md5(data).hexdigest()
        self.server.store[digest] = data
        answer = '{}+{}\n'.format(digest, len(data)).encode()
        self.server.pause('response')
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(answer)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.server.pause('response_body')
        self._send_body(answer)
        self.server.pause('response_close')
        self.close_connection = True


class StubKeepServers(tutil.ApiClientMock):
    """TestCase mixin: one stub Keep server per test, as `self.server`."""

    def setUp(self):
        super().setUp()
        self.server = StubServer(('127.0.0.1', 0), StubHandler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name='keepstub', daemon=True)
        self.thread.start()
        # Stopped through addCleanup, so a test class overriding tearDown
        # without calling this one still stops its server.
        self.addCleanup(self._stop_stub_server)
        self.api_client = self.mock_keep_services(
            count=1, service_host='localhost', service_port=self.port)

    def _stop_stub_server(self):
        if getattr(self, 'server', None) is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def tearDown(self):
        self._stop_stub_server()
        super().tearDown()
