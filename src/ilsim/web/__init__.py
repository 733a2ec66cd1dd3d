"""`ilsim serve`: a local web explorer of ilsim's models (Dash), for teaching and for trying a model by hand.

``create_app`` builds the Dash application; ``start`` binds it to an address and serves it until stopped.
The pages use ilsim's public functions only (load, compile, simulate, summarise) and the report's panels.
See docs/web.md.
"""

from __future__ import annotations

import logging
import socket
import threading
import webbrowser
from pathlib import Path

LOOPBACK = "127.0.0.1"


def start(host: str = LOOPBACK, port: int = 0, results_root: Path | None = None):
    """A threaded HTTP server for the app on ``host:port`` (0: a free port), not yet serving; its URL is
    ``url(server)``. Serve with ``server.serve_forever()``; stop with ``server.shutdown()``."""
    from werkzeug.serving import make_server  # Flask's server, which Dash runs on

    from ilsim.web.app import create_app

    _probe(host, port)
    app = create_app(results_root)
    server = make_server(host, port, app.server, threaded=True)
    server.dash_app = app
    return server


def _probe(host: str, port: int) -> None:
    """Raise OSError when ``host:port`` cannot be bound: werkzeug prints the reason itself and calls sys.exit(1),
    which would leave the CLI no way to say which option is wrong (and exit 1 instead of 2)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # an unknown host: socket.gaierror
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds: TIME_WAIT is no refusal
        probe.bind((host, port))


def url(server) -> str:
    host = server.host if ":" not in server.host else f"[{server.host}]"
    return f"http://{host}:{server.server_port}/"


def serve(host: str = LOOPBACK, port: int = 0, open_browser: bool = True, results_root: Path | None = None,
          announce=print) -> None:
    """Serve until interrupted (Ctrl-C)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request on the terminal
    server = start(host, port, results_root)
    announce(f"ilsim explorer at {url(server)} (Ctrl-C stops it)")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url(server),)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.dash_app.runner.shutdown()
        server.dash_app.launcher.shutdown()
