"""HTTP(S) transfer of one file into a partial file, resumed by range requests.

* A partial file is continued with ``Range: bytes=N-`` (and ``If-Range`` with the validator the
  server gave when it began, so a file changed on the server restarts from zero instead of being
  spliced). A server that answers a range request with the whole file is read from zero.
* A dropped connection, a timeout, 408/429/5xx are retried with doubling back-off; the count of
  tries starts again whenever bytes arrive. 404 and other client errors are one line at once.
* Proxies come from the environment (``https_proxy``, ``http_proxy``, ``no_proxy``), as urllib reads them.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jeoparda import __version__
from jeoparda.download.meter import Interrupted
from jeoparda.errors import JeopardaError
from jeoparda.safe_files import open_regular, open_write, refuse_link, write_bytes_atomic

CHUNK = 1 << 20
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(?P<start>\d+)-\d+/(?P<total>\d+|\*)")


@dataclass(frozen=True)
class Policy:
    """How hard to try: ``retries`` after the first try, back-off from ``backoff_s`` doubling to ``max_backoff_s``."""

    retries: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event, compare=False)  # set: stop waiting, give up



class _Retry(Exception):
    """A failure worth another try (the message says what happened)."""


def _request(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(url, method=method, headers={"User-Agent": f"jeoparda/{__version__}",
                                                               "Accept-Encoding": "identity", **(headers or {})})


def _open(request: urllib.request.Request, policy: Policy) -> http.client.HTTPResponse:
    """Open ``request`` through a fresh opener: the proxy variables are read as they are now."""
    return urllib.request.build_opener().open(request, timeout=policy.timeout_s)


def _http_error(url: str, exc: urllib.error.HTTPError) -> Exception:
    text = f"{url}: HTTP {exc.code} {exc.reason}"
    if exc.code in RETRY_STATUS:
        return _Retry(text)
    hint = " (does the mirror hold this file under this name?)" if exc.code == 404 else ""
    return JeopardaError(text + hint)


def remote_size(url: str, policy: Policy) -> int | None:
    """The file's length as the server states it (HEAD), None where it does not say; a missing
    file or a refusing server is one line."""
    for attempt in range(policy.retries + 1):
        try:
            with _open(_request(url, method="HEAD"), policy) as resp:
                length = resp.headers.get("Content-Length")
                return int(length) if length and length.isdigit() else None
        except urllib.error.HTTPError as exc:
            if exc.code in (405, 501):  # HEAD not allowed: the length is learnt when the transfer starts
                return None
            err = _http_error(url, exc)
            if isinstance(err, JeopardaError):
                raise err from None
            if attempt == policy.retries:
                raise JeopardaError(f"{err} after {attempt + 1} tries") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if attempt == policy.retries:
                raise JeopardaError(f"{url}: {_reason(exc)} after {attempt + 1} tries") from None
        _sleep(policy, attempt)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _sleep(policy: Policy, attempt: int) -> None:
    """The back-off before try ``attempt + 2``; an interruption ends it at once."""
    delay = min(policy.backoff_s * 2 ** attempt, policy.max_backoff_s) * (1 + 0.1 * random.random())
    if policy.stop.wait(delay):
        raise Interrupted


def _validator_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _read_validator(partial: Path, url: str) -> str | None:
    try:
        with open_regular(_validator_path(partial), 1 << 16) as handle:
            saved = json.loads(handle.read())
    except (OSError, ValueError, JeopardaError):
        return None
    return saved.get("validator") if isinstance(saved, dict) and saved.get("url") == url else None


def fetch(url: str, partial: Path, expected_size: int | None, policy: Policy,
          progress: Callable[[int], object] = lambda n: None, warn: Callable[[str], object] | None = None) -> int:
    """Bring ``url`` into ``partial`` whole, continuing what is there; returns its length."""
    warn = warn or (lambda text: print(f"jeoparda: warning: {text}", file=sys.stderr, flush=True))
    refuse_link(partial)
    attempt = 0
    best = _size(partial)  # the most bytes held so far: only passing it counts as progress
    while True:
        if policy.stop.is_set():
            raise Interrupted
        try:
            total = _one_try(url, partial, _size(partial), expected_size, policy, progress)
            if total is not None:
                return total
            problem = f"{url}: the connection ended at byte {_size(partial):,}"
        except _Retry as exc:
            problem = str(exc)
        now = _size(partial)
        if now > best:  # bytes beyond any earlier try: the count of tries starts again
            best, attempt = now, 0
        elif attempt >= policy.retries:  # no progress (a server that drops and cannot resume): give up
            raise JeopardaError(f"{problem} after {policy.retries + 1} tries without progress; rerun to "
                                f"continue from {now:,} bytes") from None
        else:
            attempt += 1
        warn(f"{problem}; continuing from byte {now:,}" + (f" (try {attempt + 1} of {policy.retries + 1})"
                                                              if attempt else ""))
        if attempt:
            _sleep(policy, attempt - 1)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _one_try(url: str, partial: Path, have: int, expected: int | None, policy: Policy,
             progress: Callable[[int], object]) -> int | None:
    """One request: the file's length once ``partial`` holds all of it, None when bytes arrived but
    the connection ended early; a retryable failure raises ``_Retry``."""
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = _read_validator(partial, url)
        if validator:
            headers["If-Range"] = validator
    try:
        resp = _open(_request(url, headers), policy)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after byte `have`: complete, or longer than the file
            match = re.search(r"/(\d+)", exc.headers.get("Content-Range", ""))
            if match and int(match[1]) == have and (expected is None or expected == have):
                return have
            _restart(partial, have, progress)
            raise _Retry(f"{url}: the partial file is longer than the server's; starting again") from None
        err = _http_error(url, exc)
        raise err from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(f"{url}: {_reason(exc)}") from None
    with resp:
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not match or int(match["start"]) != have:
                raise JeopardaError(f"{url}: the server answered a range request for byte {have:,} with "
                                    f"{resp.headers.get('Content-Range')!r}")
            total = int(match["total"]) if match["total"] != "*" else None
        else:  # 200: the whole file (no range support, or the file changed on the server)
            if have:
                _restart(partial, have, progress)
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
            if validator and resp.headers.get("Accept-Ranges", "").lower() != "none":
                write_bytes_atomic(_validator_path(partial), json.dumps({"url": url, "validator": validator}).encode())
        if expected is not None and total is not None and total != expected:
            raise JeopardaError(f"{url}: the server has {total:,} bytes; the published size is {expected:,} "
                                "(a different file? give its checksum with --checksums)")
        got, whole = _copy(resp, partial, have, progress, policy.stop)
    size = have + got
    if total is None and expected is not None:
        total = expected
    if total is None:  # no length anywhere: a body read to its end is the file (the MD5 check follows)
        return size if whole else None
    if size == total:
        return size
    if size > total:
        _restart(partial, size, progress)
        raise _Retry(f"{url}: received {size:,} bytes of a {total:,}-byte file; starting again")
    if got == 0:
        raise _Retry(f"{url}: the connection ended at byte {size:,} of {total:,}")
    return None


def _copy(resp: http.client.HTTPResponse, partial: Path, have: int, progress: Callable[[int], object],
          stop: threading.Event) -> tuple[int, bool]:
    """Append the response body to ``partial``: the bytes written (a drop mid-body keeps them), and
    whether the body ended normally."""
    fd = open_write(partial, append=bool(have))  # from zero: truncated
    got = 0
    try:
        while True:
            if stop.is_set():
                raise Interrupted
            try:
                chunk = resp.read1(CHUNK)  # what has arrived: progress and Ctrl-C need not wait for a MiB
            except (OSError, http.client.HTTPException) as exc:
                if got:
                    return got, False
                raise _Retry(f"{resp.geturl()}: {_reason(exc)}") from None
            if not chunk:
                return got, True
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            got += len(chunk)
            progress(len(chunk))
    finally:
        os.close(fd)


def _restart(partial: Path, had: int, progress: Callable[[int], object]) -> None:
    """Drop what ``partial`` holds (the server sent the whole file again, or it did not fit)."""
    os.close(open_write(partial))
    progress(-had)
