"""The benchmark: poolserve against raw onnxruntime, a bare endpoint, a naive torch service and the
established serving peers. Run with ``python -m bench run [--quick]``; never part of the unit tests."""
