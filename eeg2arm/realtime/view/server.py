"""The view's web server, on threads of its own (websockets' threaded server): the page and its two static files
over plain HTTP, the updates over a WebSocket at /ws, one thread per page. A page gets `meta`, the events the feed
still holds, then each new one as it comes; the stream's thread never waits for a page (feed.py).

    GET /            index.html (with ?token=<EEG2ARM_API_TOKEN>: sets the view's cookie, then back to /)
    GET /view.js, /view.css
    GET /ws          the updates (events.py), JSON text messages, server to page only
"""
from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from importlib.resources import files

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from ...errors import UserInputError
from .access import COOKIE, Access
from .feed import Feed

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/view.js": ("view.js", "text/javascript; charset=utf-8"),
          "/view.css": ("view.css", "text/css; charset=utf-8")}
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'self'; connect-src 'self'; frame-ancestors 'none'"}
MAX_PAGES = 32  # pages open at once; more are refused (1013: try again later)
WAIT_S = 10.0  # a page with nothing new for this long is sent nothing: websockets' own pings keep it alive
CLOSE_S = 2.0  # how long a closing view waits for its pages to be told the end

quiet = logging.getLogger("eeg2arm.realtime.view")  # a page's failed handshake is never printed into the stream
quiet.addHandler(logging.NullHandler())
quiet.propagate = False


def listening_socket(host: str, port: int) -> socket.socket:
    """The view's socket, bound now (so that a taken port is one line before the stream starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserInputError(f"--view-port {port} is taken on {host}: choose another port (--view-port 0 takes "
                                 f"any free one)") from None
        raise UserInputError(f"cannot serve the view on {host}:{port} ({e.strerror or e}): give a --view-host this "
                             f"machine has (127.0.0.1 by default)") from None


class ViewServer:
    """Serves the page and the feed's events on `sock` until close()."""

    def __init__(self, sock: socket.socket, feed: Feed, meta: str, access: Access):
        self.feed, self.meta, self.access = feed, meta, access
        self.static = {path: (files(__package__).joinpath("static", name).read_bytes(), kind)
                       for path, (name, kind) in STATIC.items()}
        self.pages = 0  # pages connected and not yet told the end
        self.counted = threading.Condition()
        self.server: Server = serve(self.page, sock=sock, process_request=self.http, compression=None,
                                    max_size=1024, close_timeout=CLOSE_S, logger=quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, name="eeg2arm-view", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.socket.getsockname()[1]

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Every request, before any WebSocket handshake: the answer, or None to open the page's WebSocket."""
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        path = request.path.split("?", 1)[0]
        websocket = path == "/ws"
        refusal = self.access.refusal(headers, websocket)
        if refusal is not None:
            return connection.respond(403, refusal + "\n")
        if path == "/" and self.access.given_token(request.path):  # the token once in the URL, then the cookie
            response = connection.respond(303, "to the view\n")
            response.headers["Location"] = "/"
            response.headers["Set-Cookie"] = f"{COOKIE}={self.access.cookie}; Path=/; HttpOnly; SameSite=Strict"
            return response
        if (websocket or path == "/") and not self.access.authorized(headers):
            return connection.respond(401, "this view needs the token the stream was started with: open "
                                           "/?token=<EEG2ARM_API_TOKEN>\n")
        if websocket:
            return None
        if path not in self.static:
            return connection.respond(404, "not found: the view is at /\n")
        body, kind = self.static[path]
        response = connection.respond(200, "")
        del response.headers["Content-Type"], response.headers["Content-Length"]
        for name, value in {**HEADERS, "Content-Type": kind, "Content-Length": str(len(body))}.items():
            response.headers[name] = value
        response.body = body
        return response

    def page(self, connection: ServerConnection) -> None:
        """One page's WebSocket: meta, what the feed holds, then each new event until the end (or the page goes)."""
        with self.counted:
            if self.pages >= MAX_PAGES:
                connection.close(1013, f"{MAX_PAGES} pages are open: close one")
                return
            self.pages += 1
        try:
            connection.send(self.meta)
            seen = 0
            while True:
                events, lost, end = self.feed.after(seen, WAIT_S)
                if lost and seen:  # (a page that opens starts from what the ring holds: no loss)
                    connection.send(json.dumps({"type": "skipped", "n": lost}))
                for seen, event in events:
                    connection.send(event)
                if end is not None:
                    connection.send(end)
                    return
        except ConnectionClosed:  # the page was closed or reloaded
            return
        finally:
            with self.counted:
                self.pages -= 1
                self.counted.notify_all()

    def close(self) -> None:
        """After feed.end: give the pages up to CLOSE_S to be told, then stop serving. A page that stopped reading
        (its thread stuck in a send) has its socket closed under it: the process never waits on a page."""
        with self.counted:
            self.counted.wait_for(lambda: self.pages == 0, CLOSE_S)
        stopping = threading.Thread(target=self.server.shutdown, daemon=True)
        stopping.start()
        stopping.join(2 * CLOSE_S)
        if stopping.is_alive():
            for connection in list(self.server.all_connections):
                connection.socket.close()
            stopping.join(CLOSE_S)
        self.thread.join(CLOSE_S)
