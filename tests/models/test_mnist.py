from __future__ import annotations

import subprocess
import sys

import numpy as np

from poolserve.models.mnist import held_out_split, split_indices


def test_split_is_fixed_stratified_and_disjoint():
    first, again = held_out_split(), held_out_split()
    np.testing.assert_array_equal(first.test.images, again.test.images)
    assert len(first.test) == 1000 and len(first.train) == 4000
    assert np.bincount(first.test.labels).tolist() == [100] * 10
    train, test = split_indices(np.repeat(np.arange(10), 500))
    assert not set(train.tolist()) & set(test.tolist())
    assert len(train) + len(test) == 5000


def test_split_and_canvases_do_not_import_torch():
    modules = (
        "poolserve.models.mnist, poolserve.models.canvas, poolserve.models.sample_files, "
        "poolserve.models.distortions, poolserve.models.evaluation_sets, poolserve.models.command_options"
    )
    code = f"import sys, {modules}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
