"""``/docs`` and ``/redoc`` work without internet: every script, style and icon they load comes from the server."""

from __future__ import annotations

import re

import httpx
import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|spec-url)\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize(("page", "script_marker"), [("/docs", "isOAS31"), ("/redoc", "Redoc")])
def test_the_docs_pages_load_only_local_files_that_the_server_serves(server, page, script_marker):
    html = httpx.get(f"{server.url}{page}")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assets = sorted({a or b for a, b in ASSET.findall(html.text)})
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts and any(a.endswith(".css") or a.endswith(".png") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and "//" not in asset, f"{page} loads {asset} from elsewhere"
        answer = httpx.get(f"{server.url}{asset}")  # no token: the docs are open like /openapi.json
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    # Swagger UI 5 reads OpenAPI 3.1 (FastAPI's); Swagger UI 4 shows "unable to render" on it.
    assert httpx.get(f"{server.url}/openapi.json").json()["openapi"].startswith("3.1")
    assert any(script_marker in httpx.get(f"{server.url}{s}").text for s in scripts)
