"""Request bodies against a real HTTP server (uvicorn): the API key is checked before the body is
read, oversized bodies are refused before parsing (declared or chunked), and an upload is held
in memory once, not twice."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from pagestream.api.app import create_app
from pagestream.api.limits import MULTIPART_OVERHEAD_BYTES
from pagestream.db import Engine
from pagestream.db.apikeys import create_key
from pagestream.settings import Settings
from pagestream.stack._proc import free_port
from tests.integration.fabricate import png_bytes
from tests.waiting import wait_until

MAX_UPLOAD = 10 * 1024 * 1024
BOUNDARY = "pagestreamtestboundary"


@dataclass
class Server:
    port: int
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(migrated: Settings, engine: Engine) -> Iterator[Server]:
    settings = migrated.model_copy(update={"auth": "enabled", "max_upload_bytes": MAX_UPLOAD})
    port = free_port()
    app = create_app(settings, engine=engine)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True, name="uvicorn-test")
    thread.start()
    wait_until(lambda: srv.started, 15, "uvicorn to start")
    _, key = create_key(engine, f"limits-{uuid.uuid4().hex[:6]}")
    try:
        yield Server(port, key)
    finally:
        srv.should_exit = True
        thread.join(15)


def _multipart_head(size: int) -> tuple[bytes, bytes]:
    """Opening and closing of a multipart body whose file part holds ``size`` bytes."""
    opening = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return opening, f"\r\n--{BOUNDARY}--\r\n".encode()


def _send(port: int, head: str, chunks: Iterable[bytes] = (), *, timeout: float = 10.0) -> tuple[int, dict]:
    """Send a request by hand; stop sending as soon as the server answers. (status, JSON body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before reading everything
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        sock.close()


def test_the_api_key_is_checked_before_the_body_is_read(server: Server) -> None:
    size = 5 * 1024 * 1024  # under the cap: only the missing key can answer early
    opening, _ = _multipart_head(size)
    head = (
        f"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {size + 200}\r\n\r\n"
    )
    # only the first bytes of the body are ever sent: a server that parses the form before
    # checking the key waits for the rest, and this times out
    try:
        status, body = _send(server.port, head, [opening], timeout=5.0)
    except TimeoutError:
        pytest.fail("the server waited for the multipart body before checking the API key")
    assert status == 401 and "API key" in body["title"]
    # a wrong key as well
    wrong = head.replace("Host: x\r\n", "Host: x\r\nX-API-Key: ps_wrong\r\n")
    status, _ = _send(server.port, wrong, [opening], timeout=5.0)
    assert status == 401


def test_a_declared_oversized_body_is_refused_before_reading_it(server: Server) -> None:
    head = (
        f"POST /v1/documents HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {10**10}\r\n\r\n"
    )
    status, body = _send(server.port, head, timeout=5.0)  # not one body byte sent
    assert status == 413
    assert body["title"] == "Request too large"
    assert "PAGESTREAM_MAX_UPLOAD_BYTES" in body["detail"] and f"{MAX_UPLOAD} bytes" in body["detail"]


def test_a_chunked_body_is_counted_and_stopped_at_the_cap(server: Server) -> None:
    head = (
        f"POST /v1/documents HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    opening, _ = _multipart_head(0)
    piece = b"x" * 65536
    cap_chunks = (MAX_UPLOAD + MULTIPART_OVERHEAD_BYTES) // len(piece) + 2
    chunks = [b"%x\r\n%s\r\n" % (len(opening), opening)]
    chunks += [b"%x\r\n%s\r\n" % (len(piece), piece)] * (cap_chunks + 40)  # never terminated: no end chunk
    status, body = _send(server.port, head, chunks, timeout=10.0)
    assert status == 413
    assert "PAGESTREAM_MAX_UPLOAD_BYTES" in body["detail"]


def test_other_routes_have_a_small_cap(server: Server) -> None:
    head = (
        f"DELETE /v1/documents/{uuid.uuid4()} HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n"
    )
    status, body = _send(server.port, head, timeout=5.0)
    assert status == 413 and "at most" in body["detail"]


def test_uploads_still_work_plain_and_chunked(server: Server) -> None:
    headers = {"X-API-Key": server.key}
    data = png_bytes(120, 80)
    r = httpx.post(
        f"{server.url}/v1/documents?force=true",
        headers=headers,
        files={"file": ("scan.png", data)},
        data={"force_ocr": "true", "client_reference": "lim-1"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["options"]["force_ocr"] is True and r.json()["client_reference"] == "lim-1"
    # the same form, streamed without a Content-Length
    request = httpx.Request(
        "POST", f"{server.url}/v1/documents?force=true", headers=headers, files={"file": ("scan.png", data)}
    )
    body = request.read()
    r = httpx.post(
        f"{server.url}/v1/documents?force=true",
        headers={**headers, "Content-Type": request.headers["Content-Type"]},
        content=iter([body[:1000], body[1000:]]),
    )
    assert r.status_code == 202, r.text
    r = httpx.post(
        f"{server.url}/v1/documents",
        headers=headers,
        files={"file": ("x.png", data)},
        data={"force_ocr": "maybe"},
    )
    assert r.status_code == 422 and "force_ocr" in r.json()["detail"]
    # a form that is not multipart is a body of the wrong media type: 415, saying how to send it
    r = httpx.post(f"{server.url}/v1/documents", headers=headers, data={"password": "x"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = httpx.post(f"{server.url}/v1/documents", headers=headers, files={"password": (None, "x")})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_an_upload_is_held_in_memory_once(server: Server) -> None:
    size = 8 * 1024 * 1024
    opening, closing = _multipart_head(size)
    head = (
        f"POST /v1/documents HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(opening) + size + len(closing)}\r\n\r\n"
    )
    line = b"plain text, not a document\n"
    piece = line * (65536 // len(line))

    def body() -> Iterator[bytes]:  # generated as it is sent: the client holds ~64 KiB
        yield opening
        sent = 0
        while sent < size:
            part = piece[: size - sent]
            sent += len(part)
            yield part
        yield closing

    tracemalloc.start()
    try:
        status, answer = _send(server.port, head, body(), timeout=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 415, answer  # read whole, inspected, refused: plain text
    # one copy of the bytes (plus the spool's 1 MiB in memory) — never two
    assert peak < 1.5 * size, (
        f"peak traced memory {peak / 2**20:.1f} MiB for an {size / 2**20:.0f} MiB upload"
    )
