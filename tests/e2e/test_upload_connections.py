"""Clients that misbehave during an upload, against `chunkmatch serve` as a subprocess:
a body held open (body timeout; SIGTERM still stops the service) and a client that goes away.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import httpx

from tests.e2e.processes import ServiceProcess, auth, create_token

PARTIAL_BODY = b"id,name\n" + b"".join(b"%d,product %d\n" % (i, i) for i in range(100))


def _project(url: str, token: str) -> str:
    r = httpx.post(f"{url}/api/projects", json={"name": "p"}, headers=auth(token), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["project"]["id"]


def _start_upload(server: ServiceProcess, token: str, project_id: str) -> socket.socket:
    """Send the headers and part of a CSV body that claims to be much longer."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(
        f"POST /api/projects/{project_id}/items HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(PARTIAL_BODY) * 100}\r\n\r\n".encode()
        + PARTIAL_BODY
    )
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP answer, headers and its Content-Length of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        assert part, data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        part = sock.recv(65536)
        assert part, data
        body += part
    return head + b"\r\n\r\n" + body


def _log(server: ServiceProcess) -> str:
    return server.log_path.read_text(errors="replace")


def _wait_for_log(server: ServiceProcess, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log(server)
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in the server log:\n{_log(server)}")


async def test_sigterm_stops_the_service_while_a_client_holds_its_body_open(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    env = {"CHUNKMATCH_SHUTDOWN_SECONDS": "1", "CHUNKMATCH_BODY_TIMEOUT_SECONDS": "3600"}
    server = await asyncio.to_thread(ServiceProcess(db_dsn, env).start)
    try:
        project_id = await asyncio.to_thread(_project, server.url, token)
        sock = await asyncio.to_thread(_start_upload, server, token, project_id)
        try:
            assert server.proc is not None  # and the upload is being read
            server.proc.terminate()
            try:
                code = await asyncio.to_thread(server.proc.wait, 60)
            except subprocess.TimeoutExpired:
                raise AssertionError("the service did not stop while a body was open") from None
            assert code in (0, -15), code
        finally:
            sock.close()
    finally:
        server.kill()


async def test_a_body_that_stops_arriving_gets_408(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(
        ServiceProcess(db_dsn, {"CHUNKMATCH_BODY_TIMEOUT_SECONDS": "0.5"}).start
    )
    try:
        project_id = await asyncio.to_thread(_project, server.url, token)
        sock = await asyncio.to_thread(_start_upload, server, token, project_id)
        try:
            answer = await asyncio.to_thread(_read_response, sock)
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        r = httpx.get(f"{server.url}/api/projects/{project_id}", headers=auth(token))
        assert r.json()["project"]["itemCount"] == 0
    finally:
        server.stop()


async def test_a_client_that_disconnects_mid_upload_is_one_warning_line(db_dsn: str) -> None:
    token = await asyncio.to_thread(create_token, db_dsn)
    server = await asyncio.to_thread(ServiceProcess(db_dsn).start)
    try:
        project_id = await asyncio.to_thread(_project, server.url, token)
        sock = await asyncio.to_thread(_start_upload, server, token, project_id)
        sock.close()
        text = await asyncio.to_thread(_wait_for_log, server, "disconnected")
        # the service goes on serving, and said it in one line
        r = httpx.get(f"{server.url}/api/health")
        assert r.status_code == 200
        text = _log(server)
        lines = [line for line in text.splitlines() if "disconnected" in line]
        assert len(lines) == 1 and "WARNING" in lines[0], text
        assert "Traceback" not in text and "ERROR" not in text, text
    finally:
        server.stop()
