"""On onnxruntime's CUDA provider the shipped models answer as on the CPU (skipped where there is no CUDA).

Sessions are the service's own (``create_session`` with the providers ``auto`` selects); the reference is
the CPU session of the same file. CI has no GPU, so this runs only where onnxruntime-gpu finds one.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from poolserve.repository.manifest import Manifest
from poolserve.repository.store import discover, latest_versions, verified_model_path
from poolserve.service.runtime.providers import CPU, CUDA, select_providers
from poolserve.service.runtime.sessions import SessionConfig, create_session, provider_in_use
from tests.service.conftest import CLASSIFIERS, REGION_MODELS, REPOSITORY
from tests.service.runtime.test_batch_handlers import random_boxes, random_images

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="onnxruntime offers no CUDA"),
]

# cuDNN may run float32 convolutions in TF32 (10-bit mantissa, ~1e-3 relative) and sums in other orders;
# 1e-3 covers that on unit-scale outputs, while a node computing something else differs by whole units.
CUDA_VS_CPU_RTOL = CUDA_VS_CPU_ATOL = 1e-3


def _feeds(manifest: Manifest, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spec, io = manifest.preprocessing, manifest.io
    feeds = {io.image.name: random_images(rng, 3, (spec.channels, spec.height, spec.width))}
    if io.boxes is not None and io.box_batch_indices is not None:
        boxes = random_boxes(rng, 12, min(spec.height, spec.width))
        feeds[io.boxes.name] = boxes
        feeds[io.box_batch_indices.name] = np.arange(len(boxes), dtype=np.int64) % 3
    return feeds


@pytest.mark.parametrize("name", CLASSIFIERS + REGION_MODELS)
def test_cuda_outputs_equal_cpu_outputs(manifests: dict[str, Manifest], reference_sessions, name: str):
    location = next(loc for loc in latest_versions(discover(REPOSITORY)) if loc.name == name)
    path = verified_model_path(location, manifests[name])
    providers = select_providers("auto", ort.get_available_providers(), strict=False).providers
    assert providers == [CUDA, CPU]
    session = create_session(path, SessionConfig(providers))
    assert provider_in_use(session) == CUDA
    feeds = _feeds(manifests[name], np.random.default_rng(0))
    got = session.run(None, feeds)
    want = reference_sessions[name].run(None, feeds)
    for output, cuda, cpu in zip(session.get_outputs(), got, want, strict=True):
        np.testing.assert_allclose(
            cuda, cpu, rtol=CUDA_VS_CPU_RTOL, atol=CUDA_VS_CPU_ATOL, err_msg=output.name
        )
