"""``bench.preprocess_cost`` loads the decode + preprocess code of an old commit from git: it must still
import under today's package layout, and give today's values on every case it times."""

from __future__ import annotations

from bench import preprocess_cost


def test_the_old_pipeline_loads_and_matches_the_current_one_bit_for_bit() -> None:
    before = preprocess_cost.before_pipeline()
    for name, (blobs, spec) in preprocess_cost.cases().items():
        expected, _ = before(blobs, spec, preprocess_cost.MAX_PIXELS)
        got, _ = preprocess_cost.after.decode_and_preprocess(blobs, spec, preprocess_cost.MAX_PIXELS)
        assert got.tobytes() == expected.tobytes(), name
