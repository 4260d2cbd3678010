"""Progress bars: the one place that makes them (training epochs, labelling, prediction).

On a terminal a bar is tqdm's, redrawn in place. Anywhere else (a log file, a pipe, a batch
job's output, a captured stream) carriage-return redraws would pile up into thousands of
fragments, so the bar writes one plain line at most every ``interval`` seconds, and a last one
when it closes.

Bars are off when the caller passes ``enabled=False`` (the CLI's ``-q``) or when the
``levelup`` logger has been set above WARNING (``logging.getLogger("levelup").setLevel("ERROR")``
silences levelup, bars included).
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

#: seconds between the lines of a bar that is not on a terminal
LINE_INTERVAL = 30.0
#: what such a line says: "fit: 40% 2/5 epoch [00:01<00:02, 1.9epoch/s, train 0.3 ...]"
_LINE_FORMAT = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} {unit} "
                "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


class _Lines:
    """A stream for tqdm that turns each redraw (``"\\r" + text``) into one line of ``stream``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    """A terminal tqdm can draw on: a tty with a width (a new pseudo-terminal is 0 x 0, where
    tqdm's in-place bar draws nothing: such a stream gets the plain lines instead)."""
    import os

    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):  # closed, not a file, or no size to ask
        return False


def progress_bar(*, total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0,
                 interval: float = LINE_INTERVAL, **options: Any) -> Any:
    """A tqdm progress bar on stderr: ``total`` steps of ``unit`` ("epoch", "mol") labelled
    ``desc``, starting at ``initial``; ``options`` go to tqdm (e.g. ``smoothing``).

    Use it as tqdm's (``update``, ``set_postfix_str``, ``set_description``, ``close``). Off
    (every call a no-op) when ``enabled`` is False or the ``levelup`` logger's own level is above
    WARNING; off a terminal, one line per ``interval`` seconds instead of in-place redraws.
    """
    import warnings

    from tqdm.std import TqdmExperimentalWarning, tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmExperimentalWarning)
        from tqdm.autonotebook import tqdm as notebook_or_tqdm

    level = logging.getLogger("levelup").level
    disable = not enabled or level > logging.WARNING
    stream = sys.stderr
    if notebook_or_tqdm is not tqdm:  # in Jupyter: tqdm's widget
        return notebook_or_tqdm(total=total, initial=initial, desc=desc, unit=unit,
                                disable=disable, **options)
    if _is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable,
                    file=stream, dynamic_ncols=True, **options)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable,
                file=_Lines(stream), mininterval=interval, maxinterval=interval,
                bar_format=_LINE_FORMAT, **options)
