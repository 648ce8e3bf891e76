"""Build one virtualenv per peer under ``.bench-venvs/`` (git-ignored), each with its framework,
onnxruntime, numpy and Pillow; TorchServe also gets torch (the CPU wheel) and pyyaml, which 0.12.0 needs
but does not declare. wrk comes from Debian (``apt-get install -y wrk``), and so does libturbojpeg0
for PyTurboJPEG."""

from __future__ import annotations

import shutil
import subprocess
import sys

from bench.suite import PEERS, VENVS

COMMON = ["onnxruntime", "numpy", "pillow"]
PACKAGES = {
    "litserve": ["litserve", "python-multipart"],
    "bentoml": ["bentoml"],
    "torchserve": ["torchserve==0.12.0", "torch-model-archiver", "pyyaml", "torch==2.13.0"],
    "ray": ["ray[serve]", "python-multipart"],
    # not a peer: the optional decoders and the profiler for bench/decoders.py and py-spy runs
    "tools": ["simplejpeg", "PyTurboJPEG<2", "opencv-python-headless", "orjson", "py-spy"],
}


def setup() -> None:
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
    for peer in (*PEERS, "tools"):
        venv = VENVS / peer
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES[peer], *COMMON], check=True)
        print(f"{peer}: ready in {venv}")
