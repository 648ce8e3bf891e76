from __future__ import annotations

import httpx


def test_live_and_ready(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and set(body["models"].values()) == {"ready"}
