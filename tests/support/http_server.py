"""A loopback HTTP file server with byte ranges that records what each request carried.

Serves a folder on 127.0.0.1 (a free port) for fsspec's ``http`` file
system, and keeps ``(path with query, Authorization header)`` of every
request in ``server.seen``, so a test can show that credentials inside a
URL were really sent.
"""

from __future__ import annotations

import http.server
import io
import os
import re
import threading
from contextlib import contextmanager

__all__ = ["http_file_server"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        path = self.translate_path(self.path.split("?", 1)[0])
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        with open(path, "rb") as fh:
            data = fh.read()
        if match:
            start = int(match.group(1)) if match.group(1) else size - int(match.group(2))
            end = int(match.group(2)) if match.group(1) and match.group(2) else size - 1
            end = min(end, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            data = data[start:end + 1]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data)


@contextmanager
def http_file_server(root):
    """Serve ``root`` over HTTP on 127.0.0.1; yields the server (``server_address``, ``seen``)."""
    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
