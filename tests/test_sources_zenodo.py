"""zenodo source against a real HTTP server on 127.0.0.1 serving a small RAVDESS zip."""

import hashlib
import http.server
import io
import socket
import threading
import time
import zipfile

import pytest

from speech_emotion.params import DataParams, SyntheticParams, ZenodoParams
from speech_emotion.sources import SourceError, populate, zenodo

NAME = "Audio_Speech_Actors_01-24.zip"


class Server:
    """Serves one file with Range support; can cut the first transfer half-way."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.requests: list[dict] = []
        self.cut_next = False
        self.status_next: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(dict(self.headers))
                if server.status_next:
                    code, server.status_next = server.status_next, None
                    self.send_error(code)
                    return
                data, start = server.payload, 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_next:
                    server.cut_next = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/records/1188976/files/{NAME}?download=1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _ravdess_zip(corpus, table) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name in table["path"].iloc[::45]:
            zf.write(corpus / name, name)
        zf.writestr("Actor_01/03-02-01-01-01-01-01.wav", b"song, left out")
    return buffer.getvalue()


@pytest.fixture
def server(synthetic_corpus, synthetic_table):
    s = Server(_ravdess_zip(synthetic_corpus, synthetic_table))
    yield s
    s.close()


def _fetch(server, downloads, md5=None, retries=3):
    md5 = md5 or hashlib.md5(server.payload).hexdigest()
    return zenodo.fetch(server.url, md5, downloads, retries=retries, timeout_s=5,
                        progress=False, backoff_s=0.01, log=lambda *a, **k: None)


def test_full_download_then_no_second_download(server, tmp_path):
    path = _fetch(server, tmp_path / "downloads")
    assert path == tmp_path / "downloads" / NAME and path.read_bytes() == server.payload
    assert len(server.requests) == 1 and "Range" not in server.requests[0]
    assert list((tmp_path / "downloads").iterdir()) == [path]          # no .part left
    again = _fetch(server, tmp_path / "downloads")
    assert again == path and len(server.requests) == 1                 # verified copy reused


def test_transfer_cut_half_way_is_resumed(server, tmp_path):
    server.cut_next = True
    path = _fetch(server, tmp_path / "downloads")
    assert path.read_bytes() == server.payload
    assert len(server.requests) == 2
    assert "Range" not in server.requests[0]
    start = int(server.requests[1]["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start < len(server.payload)                             # resumed, not restarted


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / f"{NAME}.part").write_bytes(server.payload[:1000])
    assert _fetch(server, downloads).read_bytes() == server.payload
    assert server.requests[0]["Range"] == "bytes=1000-"


def test_retries_after_server_errors(server, tmp_path):
    server.status_next = 503
    assert _fetch(server, tmp_path / "d").read_bytes() == server.payload
    assert len(server.requests) == 2


def test_gives_up_after_the_retries(server, tmp_path):
    server.cut_next = True
    with pytest.raises(zenodo.DownloadError, match="after 1 attempt"):
        _fetch(server, tmp_path / "d", retries=1)
    part = tmp_path / "d" / f"{NAME}.part"
    assert 0 < part.stat().st_size < len(server.payload)             # kept for the next run
    assert not (tmp_path / "d" / NAME).exists()


def test_md5_mismatch(server, tmp_path):
    with pytest.raises(zenodo.DownloadError, match="md5 mismatch"):
        _fetch(server, tmp_path / "d", md5="0" * 32)
    assert list((tmp_path / "d").iterdir()) == []                     # nothing half-verified left


def test_a_corrupt_cached_archive_is_downloaded_again(server, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / NAME).write_bytes(b"not the archive")
    assert _fetch(server, tmp_path / "d").read_bytes() == server.payload
    assert len(server.requests) == 1


def test_not_found_fails_at_once(server, tmp_path):
    server.status_next = 404
    with pytest.raises(zenodo.DownloadError, match="HTTP 404"):
        _fetch(server, tmp_path / "d", retries=5)
    assert len(server.requests) == 1


def test_offline_fails_at_once_and_says_how_to_use_a_local_copy(tmp_path):
    with socket.socket() as sock:                      # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(zenodo.DownloadError) as err:
        zenodo.fetch(f"http://127.0.0.1:{port}/{NAME}", "0" * 32, tmp_path / "d", retries=5,
                     timeout_s=5, progress=False, backoff_s=30)
    assert time.perf_counter() - start < 5              # no retries, no back-off
    assert "data.source=local" in str(err.value) and "data.local_path" in str(err.value)
    with pytest.raises(zenodo.DownloadError, match="data.source=local"):
        zenodo.fetch(f"http://no-such-host.invalid/{NAME}", "0" * 32, tmp_path / "d", retries=5,
                     timeout_s=5, progress=False, backoff_s=30)


def _params(server, md5):
    return DataParams(source="zenodo", local_path=None,
                      zenodo=ZenodoParams(url=server.url, md5=md5, retries=2, timeout_s=5),
                      synthetic=SyntheticParams(actors=1, seed=0))


def test_populate_downloads_and_extracts_speech_only(server, tmp_path):
    files = populate(_params(server, hashlib.md5(server.payload).hexdigest()), tmp_path / "raw",
                     tmp_path / "downloads", progress=False)
    with zipfile.ZipFile(io.BytesIO(server.payload)) as zf:
        speech = sorted(n for n in zf.namelist() if "/03-01-" in n)
    assert [f.relative_to(tmp_path / "raw").as_posix() for f in files] == speech


def test_a_malicious_download_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"x")
        zf.writestr("../../03-01-01-01-01-02-01.wav", b"escape")
    evil = Server(buffer.getvalue())
    try:
        with pytest.raises(SourceError, match="would escape"):
            populate(_params(evil, hashlib.md5(evil.payload).hexdigest()), tmp_path / "a" / "raw",
                     tmp_path / "downloads", progress=False)
    finally:
        evil.close()
    assert not (tmp_path / "a" / "raw").exists()
    assert not any(p.name.startswith("03-01") for p in tmp_path.rglob("*")
                   if "downloads" not in p.parts)
