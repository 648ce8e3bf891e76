"""Progress on a terminal (a rich bar: done / total, images/s, boxes/s for region models, errors, ETA) or,
when stderr is not a terminal (a log file, a Ray job), a plain line every few seconds and one at the end."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bar

from poolserve.extract.pipeline import Progress, ProgressSink

LOG_EVERY_S = 5.0


class ProgressReport:
    def __init__(
        self,
        total_images: int,
        done_images: int,
        label: str,
        listener: ProgressSink | None = None,
        *,
        with_boxes: bool = True,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        """``with_boxes``: a region model's job, whose rate of boxes means something (a classifier's is 0)."""
        self._listener = listener
        self._total, self._done = total_images, done_images
        self._boxes = self._errors = self._new_images = 0
        self._with_boxes, self._log_every_s = with_boxes, log_every_s
        self._started = self._logged = time.monotonic()
        self._logged_done: int | None = None  # what the last plain line said, so close() never repeats it
        self._console = Console(stderr=True)
        self._bar: Bar | None = None
        if self._console.is_terminal:
            self._bar = Bar(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rates]}"),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._task = self._bar.add_task(label, total=total_images, completed=done_images, rates="")
            self._bar.start()

    def _rates(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        boxes = f"{self._boxes / elapsed:.1f} boxes/s, " if self._with_boxes else ""
        return f"{self._new_images / elapsed:.1f} images/s, {boxes}{self._errors} errors"

    def __call__(self, step: Progress) -> None:
        if self._listener is not None:
            self._listener(step)
        self._done += step.images
        self._new_images += step.images
        self._boxes += step.boxes
        self._errors += step.errors
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done, rates=self._rates())
        elif time.monotonic() - self._logged >= self._log_every_s:
            self._logged = time.monotonic()
            self._line()

    def _line(self) -> None:
        self._logged_done = self._done
        # A resumed job with nothing left did no work this run: it has no rate to report.
        done = "every one done before this run" if self._new_images == 0 and self._done else self._rates()
        print(f"extract: {self._done}/{self._total} images, {done}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        # The last step may have printed the final count already (Ray reports a whole shard at once).
        if self._logged_done != self._done:
            self._line()
