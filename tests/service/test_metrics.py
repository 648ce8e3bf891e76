from __future__ import annotations

import io
import socket
import time

import httpx
from PIL import Image


def test_metrics_count_requests_by_route_template_and_record_batches(client: httpx.Client) -> None:
    client.get("/v1/models/lenet5-mnist")
    client.post("/v1/models/lenet5-mnist/classify", content=b"x", headers={"content-type": "image/png"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'poolserve_http_requests_total{method="GET",model="lenet5-mnist",route="/v1/models/{name}",status="200"}'
        in text
    )
    assert 'route="/v1/models/{name}/classify",status="400"' in text
    assert "poolserve_http_request_duration_seconds_bucket" in text
    assert 'poolserve_model_ready{model="lenet5-mnist"} 1.0' in text
    assert "poolserve_queue_depth" in text


def test_inference_records_batch_sizes(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="PNG")
    files = [("images", (f"{i}.png", buffer.getvalue(), "image/png")) for i in range(3)]
    assert client.post("/v1/models/lenet5-mnist/classify", files=files).status_code == 200
    text = client.get("/metrics").text
    assert 'poolserve_batch_size_count{model="lenet5-mnist"}' in text
    assert "poolserve_inference_duration_seconds_count" in text


def test_a_client_that_hangs_up_mid_upload_is_counted_as_499_not_a_server_error(server_url: str) -> None:
    """Flaky client networks must not raise the 5xx rate an operator alerts on."""
    host, port = server_url.removeprefix("http://").split(":")
    path, template = "/v1/models/lenet5-mnist/classify", "/v1/models/{name}/classify"
    for body in (b"", b"x" * 5000):  # hung up after the head, and part-way through the body
        with socket.create_connection((host, int(port))) as abandoned:
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n"
            abandoned.sendall(head.encode() + b"\r\n" + body)
            time.sleep(0.2)  # the server reads what was sent before the connection closes
    with httpx.Client(base_url=server_url, timeout=30) as http:
        deadline = time.monotonic() + 10
        while True:
            text = http.get("/metrics").text
            count = _sample(text, f'route="{template}",status="499"')
            if count >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert count >= 2, text
    assert f'route="{template}",status="500"' not in text


def _sample(metrics: str, labels: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if labels in line)
