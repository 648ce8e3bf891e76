from __future__ import annotations

import io

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
