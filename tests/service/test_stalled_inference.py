"""A real inference that never returns, and a real server process that dies, against ``poolserve serve``.

The stall is native: ``stall_model`` runs an ONNX ``Loop`` of 10^15 trips inside onnxruntime on a bright
image. The crash is a SIGSEGV delivered to the server process from outside: onnxruntime 1.32 checks the
inputs that used to crash it (RoI batch indices, for one), and no input found crashes it reliably, so the
test kills the process the way a segfault would and checks what the deployment does about it.
"""

from __future__ import annotations

import io
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from poolserve.service.runtime.watchdog import EXIT_INFERENCE_STALLED
from tests.service.conftest import DigitFile, wait_until_ready
from tests.service.stall_model import NAME, write_repository
from tests.service.supervised import server_processes, supervised_server


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), value).save(buffer, format="PNG")
    return buffer.getvalue()


DARK, BRIGHT = png(0), png(255)


def classify(url: str, body: bytes, model: str = NAME) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/{model}/classify", content=body, headers={"Content-Type": "image/png"}, timeout=60
    )


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("stall-repository"))


def test_a_stalled_inference_answers_503_turns_unready_and_the_process_is_replaced(
    repository: Path, digit_files: list[DigitFile]
) -> None:
    with supervised_server(repository, stall_min_s="1", shutdown_grace_s="5") as (supervisor, url):
        (first,) = server_processes(supervisor.pid)
        assert classify(url, DARK).status_code == 200  # the model serves; its time per image is measured

        with httpx.Client(base_url=url, timeout=60) as probe, ThreadPoolExecutor(6) as pool:
            assert probe.get("/health/ready").status_code == 200  # the probe's connection is open now
            stalled = pool.submit(classify, url, BRIGHT)
            time.sleep(0.2)  # so the stalled one runs first; the others queue behind it
            queued = [pool.submit(classify, url, DARK) for _ in range(4)]
            answers = [stalled.result(), *(q.result() for q in queued)]
            readiness = probe.get("/health/ready")

        for answer in answers:  # the request in flight and those queued behind it: 503, not a hang
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "5"
            assert "stopped responding" in answer.json()["detail"]
        assert readiness.status_code == 503
        assert readiness.json()["status"] == "unavailable"

        # The stalled process exits on its own; the supervisor starts a fresh one on the same socket.
        deadline = time.monotonic() + 60
        while server_processes(supervisor.pid) in ([], [first]):
            assert time.monotonic() < deadline, "no new server process"
            time.sleep(0.1)
        wait_until_ready(supervisor, int(url.rsplit(":", 1)[1]), timeout_s=60)
        assert classify(url, DARK).status_code == 200
        digit = digit_files[0]
        reply = classify(url, digit.path.read_bytes(), model="lenet5-mnist")
        assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label
        assert supervisor.poll() is None


def test_sigterm_ends_the_process_within_its_grace_although_an_inference_never_returns(
    repository: Path,
) -> None:
    grace_s = 1.5  # fractions of a second are taken
    # The watchdog stays out of it (600 s): SIGTERM alone has to end a process with a stuck thread.
    with supervised_server(repository, stall_min_s="600", shutdown_grace_s=str(grace_s)) as (supervisor, url):
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(classify, url, BRIGHT)
            time.sleep(0.5)  # the batch is running now
            assert not stuck.done()
            sent = time.monotonic()
            supervisor.send_signal(signal.SIGTERM)
            # grace for the requests in flight, 2 s for the batchers, and slack for a loaded CI machine
            code = supervisor.wait(timeout=grace_s + 20)
            took = time.monotonic() - sent
            answer = stuck.result()  # cancelled at the end of the grace period: 503, not uvicorn's 500
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"] == "the server is shutting down"
        assert code == EXIT_INFERENCE_STALLED
        assert took < grace_s + 20
        assert server_processes(supervisor.pid) == []


def test_a_crashed_server_process_is_replaced_on_the_same_socket(
    repository: Path, digit_files: list[DigitFile]
) -> None:
    digit = digit_files[0]
    with supervised_server(repository) as (supervisor, url):
        (first,) = server_processes(supervisor.pid)
        os.kill(first, signal.SIGSEGV)
        # Connections made while no server runs wait in the socket's backlog: answered, not refused.
        reply = classify(url, digit.path.read_bytes(), model="lenet5-mnist")
        assert reply.status_code in (200, 503), reply.text  # 503 while the new process loads its models
        wait_until_ready(supervisor, int(url.rsplit(":", 1)[1]), timeout_s=60)
        reply = classify(url, digit.path.read_bytes(), model="lenet5-mnist")
        assert reply.json()["results"][0]["predictions"][0]["label"] == digit.label
        (second,) = server_processes(supervisor.pid)
        assert second != first
        assert supervisor.poll() is None


def test_the_server_process_does_not_outlive_a_killed_supervisor(repository: Path) -> None:
    with supervised_server(repository, shutdown_grace_s="1") as (supervisor, _):
        (server,) = server_processes(supervisor.pid)
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{server}").exists() and not zombie(server):
            assert time.monotonic() < deadline, "the server process outlived its supervisor"
            time.sleep(0.1)


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
