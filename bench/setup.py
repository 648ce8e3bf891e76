"""Build one virtualenv per peer under ``.bench-venvs/`` (git-ignored), each with its framework,
onnxruntime, numpy and Pillow; TorchServe also gets torch (the CPU wheel) and pyyaml, which 0.12.0 needs
but does not declare. ``openvino`` gets onnxruntime-openvino and numpy only. wrk comes from Debian
(``apt-get install -y wrk``), and so does libturbojpeg0 for PyTurboJPEG."""

from __future__ import annotations

import shutil
import subprocess
import sys

from bench.suite import VENVS

COMMON = ["onnxruntime", "numpy", "pillow"]
PACKAGES = {
    "litserve": ["litserve", "python-multipart"],
    "bentoml": ["bentoml"],
    "torchserve": ["torchserve==0.12.0", "torch-model-archiver", "pyyaml", "torch==2.13.0"],
    "ray": ["ray[serve]", "python-multipart"],
    # not a peer: the optional decoders and the profiler for bench/decoders.py and py-spy runs
    "tools": ["simplejpeg", "PyTurboJPEG<2", "opencv-python-headless", "orjson", "py-spy"],
    # not a peer: OpenVINO's execution provider for bench/openvino.py
    "openvino": ["onnxruntime-openvino", "numpy"],
}
# onnxruntime-openvino ships its own ``onnxruntime`` module: the plain wheel beside it would shadow it.
OWN_RUNTIME = {"openvino"}


def setup() -> None:
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
    for peer in PACKAGES:
        venv = VENVS / peer
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        common = [] if peer in OWN_RUNTIME else COMMON
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES[peer], *common], check=True)
        print(f"{peer}: ready in {venv}")
