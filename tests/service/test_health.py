from __future__ import annotations

import httpx


def test_live_and_ready(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and set(body["models"].values()) == {"ready"}


def test_head_answers_wherever_get_does_without_a_body(server_url: str) -> None:
    """Uptime checkers and load balancers probe with HEAD; RFC 9110 has every GET resource answer it."""
    with httpx.Client(base_url=server_url, timeout=30) as http:
        for path in (
            "/health/live",
            "/health/ready",
            "/metrics",
            "/v1/models/lenet5-mnist",
            "/v2/health/ready",
        ):
            get, head = http.get(path), http.head(path)
            assert head.status_code == get.status_code == 200, path
            assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
        assert http.head("/v1/models/no-such-model").status_code == 404
        assert http.head("/v1/models/lenet5-mnist/classify").status_code == 405  # POST only
        metrics = http.get("/metrics").text
    assert 'method="HEAD",model="lenet5-mnist",route="/v1/models/{name}",status="200"' in metrics
