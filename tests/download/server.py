"""A loopback HTTP server for the download tests: files from a dict, with faults on demand."""
from __future__ import annotations

import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Files:
    """What the server holds and how it misbehaves; ``log`` records (method, name, Range header)."""

    data: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True                 # False: Range is ignored, the whole file is sent (200)
    drop_after: dict[str, int] = field(default_factory=dict)  # name -> drop the connection once after N bytes
    status: dict[str, int] = field(default_factory=dict)      # name -> answer this status instead
    rate: int = 0                       # bytes per second (0: as fast as it goes)
    drop_always: bool = False           # drop at every request, not once
    no_length: bool = False             # send no Content-Length (the body ends when the connection closes)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    if_range: list[str | None] = field(default_factory=list)  # If-Range headers received
    proxied: list[str] = field(default_factory=list)           # absolute URLs asked for (a proxy's requests)


class _Handler(BaseHTTPRequestHandler):
    files: Files
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _name(self) -> str:
        if self.path.startswith("http://"):
            self.files.proxied.append(self.path)
        return urllib.parse.urlparse(self.path).path.rsplit("/", 1)[-1]

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        files, name = self.files, self._name()
        files.log.append((self.command, name, self.headers.get("Range")))
        files.if_range.append(self.headers.get("If-Range"))
        if name in files.status:
            self.send_response(files.status[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name not in files.data:
            self.send_error(404)
            return
        body = files.data[name]
        etag = f'"{hash(body) & 0xffffffff:x}"'
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if self.headers.get("If-Range") not in (None, etag):
            match = None  # the file changed since the validator: the whole new file (RFC 9110, If-Range)
        if match and files.ranges:
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if files.no_length:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes" if files.ranges else "none")
        self.end_headers()
        if head:
            return
        drop = files.drop_after.get(name) if files.drop_always else files.drop_after.pop(name, None)
        view = memoryview(body)[start:]
        sent = 0
        step = 16384
        while sent < len(view):
            if drop is not None and sent >= drop:
                self.close_connection = True
                self.connection.shutdown(2)  # the connection drops mid-file
                return
            chunk = view[sent:sent + step]
            try:
                self.wfile.write(chunk)
            except OSError:
                return
            sent += len(chunk)
            if files.rate:
                time.sleep(len(chunk) / files.rate)


class Server:
    """``with Server(files) as url:`` serves ``files`` on 127.0.0.1 at ``url`` (ending in /)."""

    def __init__(self, files: Files) -> None:
        handler = type("Handler", (_Handler,), {"files": files})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
