"""A local web server for COCO export archives: strong ETags (or none, like a server that sends no validators),
HEAD, and a count of the GET requests per path, so a test can tell a check from a download."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class ExportServer:
    """Serves the files of ``root``; ``validators=False`` sends neither ETag nor Last-Modified."""

    root: Path
    port: int = 0
    validators: bool = True
    gets: Counter[str] = field(default_factory=Counter)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: ExportServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _head(self) -> bytes | None:
            path = server.root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return None
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/zip")
            if server.validators:
                self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
            self.end_headers()
            return body

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._head()

        def do_GET(self) -> None:  # noqa: N802
            server.gets[self.path] += 1
            body = self._head()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(root: Path, validators: bool = True) -> Iterator[ExportServer]:
    """An :class:`ExportServer` on a free port for the duration of the block."""
    state = ExportServer(root, validators=validators)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
