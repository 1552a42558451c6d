"""The query server against hostile input, over real HTTP on 127.0.0.1 (raw sockets where a client would not send it).

Dates at the calendar's edge, a body from a client without the token, bodies over
the limit (announced and chunked), a huge field echoed back, absolute paths in error
answers, and the trailing-slash redirect.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.server import MemoriesServer
from memories.server.guard import DEFAULT_MAX_BODY_BYTES
from memories.server.serialize import ECHO_CHARS
from memories.store.paths import StorageRoot

ANSWER_TIMEOUT_S = 5.0
"""Seconds a refusal may take to arrive; the old server never answered before the whole body came."""
EAST_EDGE = "0001-01-01T00:00:00+14:00"  # year 0 in UTC
WEST_EDGE = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
REPORT = "/v1/reports/environmental/35VLG/2023-06"
ANALYSIS = "/v1/analyses/historical"


def _loc(answer: httpx.Response) -> list[tuple[Any, ...]]:
    return [tuple(d["loc"]) for d in answer.json()["detail"]]


@pytest.mark.parametrize(
    ("method", "path", "payload", "loc", "says"),
    [
        ("GET", "/v1/records", {"as_of": EAST_EDGE}, ("query", "as_of"), "outside the years 0001..9998"),
        ("GET", "/v1/records", {"as_of": WEST_EDGE}, ("query", "as_of"), "outside the years 0001..9998"),
        ("GET", "/v1/records", {"time_point": "9999-12"}, ("query", "time_point"), "has year 9999"),
        ("GET", "/v1/records", {"time_point": "0000-01"}, ("query", "time_point"), "has year 0000"),
        ("GET", "/v1/records", {"time_point": EAST_EDGE}, ("query", "time_point"), "outside the years"),
        ("GET", "/v1/records", {"start": "2023-01", "end": "9999-12"}, ("query", "end"), "has year 9999"),
        ("GET", "/v1/events", {"end": "9999-12"}, ("query", "end"), "has year 9999"),
        ("GET", "/v1/events", {"start": "0000-01"}, ("query", "start"), "has year 0000"),
        ("GET", "/v1/assets", {"as_of": EAST_EDGE}, ("query", "as_of"), "outside the years"),
        ("GET", "/v1/tiles", {"as_of": WEST_EDGE}, ("query", "as_of"), "outside the years"),
        ("GET", REPORT, {"as_of": EAST_EDGE}, ("query", "as_of"), "outside the years"),
        ("GET", f"{REPORT}/files/ndvi.png", {"as_of": EAST_EDGE}, ("query", "as_of"), "outside the years"),
        ("GET", "/v1/reports/environmental/35VLG/9999-12", None, ("path", "month"), "has year 9999"),
        ("GET", "/v1/reports/environmental/35VLG/0000-01", None, ("path", "month"), "has year 0000"),
        ("POST", ANALYSIS, {"tile": "35VLG", "month": "9999-12"}, ("body", "month"), "has year 9999"),
        ("POST", ANALYSIS, {"tile": "35VLG", "month": "2023-06", "as_of": EAST_EDGE}, ("body", "as_of"), "outside"),
        (
            "POST",
            "/v1/property",
            {"address": "Mannerheimintie 22", "time_range": ["2023-01", "9999-12"]},
            ("body", "time_range", 1),
            "has year 9999",
        ),
        (
            "POST",
            "/v1/property",
            {"address": "Mannerheimintie 22", "time_range": ["0000-01", "2023-12"]},
            ("body", "time_range", 0),
            "has year 0000",
        ),
        ("POST", "/v1/property", {"address": "Mannerheimintie 22", "as_of": WEST_EDGE}, ("body", "as_of"), "outside"),
    ],
)
def test_dates_at_the_calendars_edge_are_a_422_naming_the_field(client, method, path, payload, loc, says):
    answer = client.get(path, params=payload) if method == "GET" else client.post(path, json=payload)
    assert answer.status_code == 422, answer.text
    [error] = [d for d in answer.json()["detail"] if tuple(d["loc"]) == loc]
    assert says in error["msg"], error
    assert "not of the form" not in error["msg"]  # 0000-01 has the form YYYY-MM; its year is what is wrong


def test_the_last_months_the_calendar_allows_are_answered(client):
    assert client.get("/v1/records", params={"start": "0001-01", "end": "9998-12"}).json()["count"] > 0
    assert client.get("/v1/events", params={"start": "0001-01-01T00:00:00Z", "end": "9998-12"}).status_code == 200


# -- bodies -----------------------------------------------------------------------------------


def _exchange(server: MemoriesServer, head: str, body: bytes = b"", *, chunks: list[bytes] | None = None) -> Any:
    """Send a request by hand and read the answer: (status, headers, parsed JSON, seconds to the answer).

    ``chunks``: send the body chunked; sending stops early if the server closes the connection.
    """
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(head.encode() + body)
        for chunk in chunks or []:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
        if chunks is not None:
            try:
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)  # socket.timeout: no answer in time
            assert piece, f"the server closed the connection without an answer: {data!r}"
            data += piece
        seconds = time.perf_counter() - started
        raw_head, _, rest = data.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
    return status, headers, json.loads(rest[:length]), seconds


def _post_head(path: str, *, length: int | None, token: str | None) -> str:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n{size}\r\n"


def test_a_client_without_the_token_gets_its_401_before_it_sends_the_body(server):
    # 300 MB announced, not one byte of it sent: the answer comes from the headers.
    head = _post_head(ANALYSIS, length=300_000_000, token=None)
    status, headers, answer, seconds = _exchange(server, head)
    assert status == 401 and "missing bearer token" in answer["detail"]
    assert headers["connection"] == "close"  # the server does not go on receiving the upload
    assert seconds < ANSWER_TIMEOUT_S
    wrong = _post_head(ANALYSIS, length=300_000_000, token="not-the-token")
    assert _exchange(server, wrong)[2]["detail"].startswith("invalid bearer token")


def test_a_body_over_the_limit_is_a_413_at_once_when_announced_and_when_chunked(server, served_memory):
    token = served_memory.token
    status, headers, answer, _ = _exchange(server, _post_head(ANALYSIS, length=DEFAULT_MAX_BODY_BYTES + 1, token=token))
    assert (status, answer["error"]) == (413, "RequestTooLarge") and str(DEFAULT_MAX_BODY_BYTES) in answer["detail"]
    assert headers["connection"] == "close"

    # Chunked (no Content-Length): a valid request padded past the limit; the old server echoed it in a 422.
    padding = b"x" * (DEFAULT_MAX_BODY_BYTES + 256 * 1024)
    body = b'{"tile": "35VLG", "month": "2023-06", "pad": "' + padding + b'"}'
    chunks = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    status, _, answer, _ = _exchange(server, _post_head(ANALYSIS, length=None, token=token), chunks=chunks)
    assert (status, answer["error"]) == (413, "RequestTooLarge"), answer

    # Under the limit, chunked bodies are read as usual.
    small = [b'{"tile": "35VLG", ', b'"month": "June"}']
    status, _, answer, _ = _exchange(server, _post_head(ANALYSIS, length=None, token=token), chunks=small)
    assert status == 422 and ["body", "month"] in [d["loc"] for d in answer["detail"]]


def test_a_422_repeats_only_the_start_of_a_long_input(client):
    huge = "X" * 500_000  # under the body limit
    answer = client.post(ANALYSIS, json={"tile": huge, "month": "2023-06"})
    assert answer.status_code == 422 and ("body", "tile") in _loc(answer)
    assert len(answer.content) < 4 * ECHO_CHARS + 2000, len(answer.content)
    [error] = answer.json()["detail"]
    assert error["input"].startswith('"XXXX') and error["input"].endswith("(500002 characters)")
    # A long value that a message quotes is cut there too.
    long_range = {"address": "Mannerheimintie 22", "time_range": ["2023-01", "Y" * 300_000]}
    answer = client.post("/v1/property", json=long_range)
    assert answer.status_code == 422 and ("body", "time_range", 1) in _loc(answer)
    assert len(answer.content) < 4 * ECHO_CHARS + 2000, len(answer.content)


# -- what answers reveal ---------------------------------------------------------------------


def test_error_answers_name_no_absolute_server_path(tmp_path, served_memory):
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    from memories.months import month_range

    first, last = month_range("2023-06")
    catalog.record(  # a report version the store does not hold: a 500 whose message names the report's path
        asset="environmental_report",
        uri=root.report_uri("environmental", "35VLG", "2023-06", "report.html"),
        tile="35VLG",
        partition="2023-06",
        valid_from=first,
        valid_to=last,
        version_id="20230701T000000000000Z-deadbeef",
    )
    token = served_memory.token
    with MemoriesServer(TemporalMemory(catalog, root), token=token, port=0) as server:
        c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        answers = [
            c.get("/v1/features", params={"lat": 60.17, "lon": 24.94, "radius_km": 1}),
            c.get("/v1/events"),
            c.get(REPORT),
        ]
    assert [a.status_code for a in answers] == [404, 404, 500]
    for a in answers:
        assert "file://" not in a.text and str(tmp_path) not in a.text, a.text
    assert "<storage root>/memory/spatial/default.parquet" in answers[0].json()["detail"]
    assert "materialize the spatial_index asset" in answers[0].json()["detail"]


def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_clients_host(server, served_memory):
    auth = {"Authorization": f"Bearer {served_memory.token}", "Host": "evil.example"}
    answer = httpx.get(f"{server.url}/v1/records/", headers=auth, follow_redirects=False)
    assert answer.status_code == 404 and "location" not in answer.headers
    assert "trailing slash" in answer.json()["detail"] and "evil.example" not in answer.text
    assert httpx.get(f"{server.url}/v1/records", headers=auth).status_code == 200
