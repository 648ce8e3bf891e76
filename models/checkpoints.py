"""Where ``poolserve train`` leaves checkpoints for ``poolserve export``. Torch-free: the CLI imports it."""

from pathlib import Path

DEFAULT_CHECKPOINTS = Path("runs/checkpoints")
