"""The RAVDESS archive from Zenodo (record 1188976): streamed, resumable, verified.

The archive is kept in the downloads folder (`data/downloads/`, git-ignored, not a DVC
output): a verified copy there is never downloaded again. A partial file
(`<name>.part`) is resumed with an HTTP Range request; failed attempts are retried with
exponential back-off. Size (from the server) and md5 (from params) are checked before the
file takes its final name. Offline, it fails at once and says how to use a local copy.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .layout import SourceError

CHUNK = 1 << 20
USER_AGENT = "speech-emotion (https://zenodo.org/records/1188976)"
OFFLINE_HINT = (
    "To use a copy you already have instead (a folder with Actor_NN/ folders, or the zip): "
    "dvc exp run -S data.source=local -S data.local_path=/path/to/Audio_Speech_Actors_01-24.zip "
    "(or set data.source: local and data.local_path in params.yaml)."
)


class DownloadError(SourceError):
    """The archive could not be downloaded or verified."""


class _Retry(Exception):
    """A transient failure: try again after a pause."""


def archive_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name
    return name or "download.zip"


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, md5: str, downloads_dir: Path, retries: int, timeout_s: float,
          progress: bool = True, backoff_s: float = 1.0, log=print) -> Path:
    """The verified archive at `downloads_dir/<name>`, downloaded only if not already there."""
    downloads_dir = Path(downloads_dir)
    downloads_dir.mkdir(parents=True, exist_ok=True)
    final = downloads_dir / archive_name(url)
    part = final.with_name(final.name + ".part")
    md5 = md5.lower()
    if final.exists():
        if file_md5(final) == md5:
            log(f"{final}: already downloaded, md5 verified", file=sys.stderr)
            return final
        log(f"{final}: md5 does not match {md5}; downloading again", file=sys.stderr)
        final.unlink()
    for attempt in range(1, retries + 1):
        try:
            _download(url, part, timeout_s, progress)
            break
        except _Retry as err:
            if attempt == retries:
                raise DownloadError(f"{url}: download failed after {retries} attempt(s): {err}. "
                                    f"The partial file {part} is kept and will be resumed by the "
                                    f"next run. {OFFLINE_HINT}") from None
            pause = backoff_s * 2 ** (attempt - 1)
            log(f"{url}: attempt {attempt}/{retries} failed ({err}); retrying in {pause:g} s",
                file=sys.stderr)
            time.sleep(pause)
    got = file_md5(part)
    if got != md5:
        part.unlink()
        raise DownloadError(f"{url}: md5 mismatch: expected {md5}, got {got} "
                            f"({part} removed; check data.zenodo.url and data.zenodo.md5)")
    part.replace(final)
    return final


def _download(url: str, part: Path, timeout_s: float, progress: bool) -> None:
    """One attempt: resume `part` from its current size until the server's total size."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:      # nothing left to fetch: the part is complete (or bad)
            return
        if err.code in (408, 425, 429) or err.code >= 500:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}. {OFFLINE_HINT}") from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or (
                isinstance(reason, OSError) and reason.errno in (101, 113)):  # unreachable
            raise DownloadError(f"{url}: cannot reach the server ({reason}); offline? "
                                f"{OFFLINE_HINT}") from None
        raise _Retry(str(reason)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
        raise _Retry(f"{type(err).__name__}: {err}") from None
    with response:
        if have and response.status == 200:   # the server ignored the Range: start over
            have = 0
        total = _total_size(response, have)
        mode = "ab" if have else "wb"
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
                        raise _Retry(f"transfer interrupted ({type(err).__name__}: "
                                     f"{err})") from None
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
        finally:
            bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"transfer cut at {size} of {total} bytes")


def _total_size(response, have: int) -> int | None:
    """The full size of the file from Content-Range (206) or Content-Length (200)."""
    content_range = response.headers.get("Content-Range")
    if response.status == 206 and content_range:
        match = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", content_range)
        if not match or int(match.group(1)) != have:
            raise _Retry(f"unexpected Content-Range {content_range!r} for a resume at {have}")
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None
