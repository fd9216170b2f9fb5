"""HTTP transfer against a loopback server: range resume, drops, no range support, errors, proxies."""
from __future__ import annotations

import os

import pytest

from jeoparda.download.transfer import Policy, fetch, remote_size
from jeoparda.errors import JeopardaError
from tests.download.server import Files, Server

FAST = Policy(retries=3, backoff_s=0.01, timeout_s=10)
BODY = os.urandom(300_000)


def _gets(files: Files) -> list[str | None]:
    return [rng for method, _, rng in files.log if method == "GET"]


def test_a_partial_file_is_continued_with_a_range_request(tmp_path):
    files = Files({"f.bin": BODY})
    partial = tmp_path / "f.bin.partial"
    partial.write_bytes(BODY[:123_456])
    seen = []
    with Server(files) as url:
        assert fetch(url + "f.bin", partial, len(BODY), FAST, seen.append) == len(BODY)
    assert partial.read_bytes() == BODY
    assert _gets(files) == ["bytes=123456-"] and sum(seen) == len(BODY) - 123_456


def test_a_connection_dropped_mid_file_is_resumed_where_it_stopped(tmp_path):
    files = Files({"f.bin": BODY}, drop_after={"f.bin": 100_000})
    warnings = []
    with Server(files) as url:
        fetch(url + "f.bin", tmp_path / "p", None, FAST, warn=warnings.append)
    assert (tmp_path / "p").read_bytes() == BODY
    gets = _gets(files)
    assert gets[0] is None and len(gets) == 2 and 100_000 <= int(gets[1][6:-1]) < len(BODY)
    assert "connection ended at byte" in warnings[0]


def test_a_server_without_range_support_is_read_again_from_zero(tmp_path):
    files = Files({"f.bin": BODY}, ranges=False)
    partial = tmp_path / "p"
    partial.write_bytes(b"stale bytes from elsewhere")
    seen = []
    with Server(files) as url:
        fetch(url + "f.bin", partial, len(BODY), FAST, seen.append)
    assert partial.read_bytes() == BODY and sum(seen) == len(BODY) - len(b"stale bytes from elsewhere")


def test_without_range_support_a_drop_restarts_and_still_completes(tmp_path):
    files = Files({"f.bin": BODY}, ranges=False, drop_after={"f.bin": 50_000})
    with Server(files) as url:
        fetch(url + "f.bin", tmp_path / "p", len(BODY), FAST, warn=lambda text: None)
    assert (tmp_path / "p").read_bytes() == BODY and len(_gets(files)) == 2


def test_a_complete_partial_is_not_fetched_again(tmp_path):
    files = Files({"f.bin": BODY})
    (tmp_path / "p").write_bytes(BODY)
    with Server(files) as url:
        assert fetch(url + "f.bin", tmp_path / "p", len(BODY), FAST) == len(BODY)
    assert _gets(files) == [f"bytes={len(BODY)}-"]


def test_a_missing_file_is_one_line_without_retries(tmp_path):
    files = Files({})
    with Server(files) as url, pytest.raises(JeopardaError, match=r"f.bin: HTTP 404 .*does the mirror hold"):
        fetch(url + "f.bin", tmp_path / "p", None, FAST)
    assert len(files.log) == 1


def test_a_server_error_is_retried_then_one_line(tmp_path):
    files = Files({"f.bin": BODY}, status={"f.bin": 500})
    with Server(files) as url, pytest.raises(JeopardaError, match=r"f.bin: HTTP 500 .* after 4 tries"):
        fetch(url + "f.bin", tmp_path / "p", None, FAST, warn=lambda text: None)
    assert len(files.log) == 4


def test_a_file_of_another_size_than_published_is_refused_before_reading_it(tmp_path):
    with Server(Files({"f.bin": BODY})) as url:
        with pytest.raises(JeopardaError, match="the published size is 5"):
            fetch(url + "f.bin", tmp_path / "p", 5, FAST)
        assert remote_size(url + "f.bin", FAST) == len(BODY)
    assert not (tmp_path / "p").exists() or (tmp_path / "p").stat().st_size == 0


def test_an_unreachable_server_is_one_line(tmp_path):
    with Server(Files()) as url:
        pass  # closed: nothing listens on the port any more
    with pytest.raises(JeopardaError, match="after 2 tries"):
        remote_size(url + "f.bin", Policy(retries=1, backoff_s=0.01, timeout_s=5))


def test_the_proxy_variables_are_honoured(tmp_path, monkeypatch):
    proxy = Files({"f.bin": BODY})
    with Server(proxy) as proxy_url:
        monkeypatch.setenv("http_proxy", proxy_url)
        monkeypatch.setenv("no_proxy", "")
        fetch("http://data.example.invalid/x/f.bin", tmp_path / "p", len(BODY), FAST)
    assert (tmp_path / "p").read_bytes() == BODY
    assert proxy.proxied == ["http://data.example.invalid/x/f.bin"]


def test_a_file_changed_on_the_server_is_fetched_again_from_zero(tmp_path):
    old, new = os.urandom(200_000), os.urandom(250_000)
    partial = tmp_path / "p"
    files = Files({"f.bin": old}, drop_after={"f.bin": 60_000})
    def killed(text: str) -> None:
        raise KeyboardInterrupt  # the first run dies at the drop

    with Server(files) as url:
        with pytest.raises(KeyboardInterrupt):
            fetch(url + "f.bin", partial, None, FAST, warn=killed)
        assert 0 < partial.stat().st_size < len(old)
        files.data["f.bin"] = new  # a new ETag: If-Range makes the server send the whole new file
        fetch(url + "f.bin", partial, None, FAST, warn=lambda text: None)
    assert partial.read_bytes() == new
    assert files.log[-1][2] is not None and files.if_range[-1] is not None  # asked to continue, if unchanged


def test_a_partial_longer_than_the_file_starts_again(tmp_path):
    files = Files({"f.bin": BODY})
    partial = tmp_path / "p"
    partial.write_bytes(BODY + b"extra bytes from elsewhere")
    with Server(files) as url:
        fetch(url + "f.bin", partial, None, FAST, warn=lambda text: None)
    assert partial.read_bytes() == BODY


def test_a_server_that_drops_and_cannot_resume_is_given_up_on(tmp_path):
    files = Files({"f.bin": BODY}, ranges=False, drop_after={"f.bin": 50_000}, drop_always=True)
    with Server(files) as url, pytest.raises(JeopardaError, match="after 4 tries without progress"):
        fetch(url + "f.bin", tmp_path / "p", len(BODY), FAST, warn=lambda text: None)
    assert len(files.log) == 5  # the first try's bytes were progress; four more were not


def test_a_length_learnt_from_the_server_catches_a_body_cut_short(tmp_path):
    files = Files({"f.bin": BODY}, drop_after={"f.bin": 100_000}, no_length=True)
    with Server(files) as url:
        fetch(url + "f.bin", tmp_path / "p", len(BODY), FAST, warn=lambda text: None)
    assert (tmp_path / "p").read_bytes() == BODY
