"""Progress bars (levelup.progress) and where messages go: the ``levelup`` logger, sent to stderr
by the CLI at the level -v / -vv choose (levelup.cli.main.log_to_stderr)."""

import logging
import sys

import pytest

from levelup.cli.main import log_to_stderr
from levelup.progress import progress_bar


def test_off_a_terminal_a_bar_writes_whole_lines(capsys):
    bar = progress_bar(total=1000, desc="fit", unit="epoch", interval=3600)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    # the first line, then nothing for an hour, then the last one on close
    assert len(lines) == 2 and lines[-1].startswith("fit: 100% 1000/1000 epoch"), err


@pytest.mark.parametrize("columns, redraws", [(0, False), (80, True)])
def test_a_terminal_without_a_width_gets_whole_lines(monkeypatch, columns, redraws):
    """A new pseudo-terminal is 0 x 0, where tqdm's in-place bar would draw nothing: it gets the
    plain lines; a terminal with a width gets tqdm's redraws."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    stream = os.fdopen(terminal, "w", buffering=1)
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        bar = progress_bar(total=10, desc="fit", unit="epoch", interval=3600)
        for _ in range(10):
            bar.update(1)
        bar.close()
        stream.flush()
        os.set_blocking(master, False)
        chunks = []
        while True:
            try:
                chunks.append(os.read(master, 65536))
            except BlockingIOError:
                break
        out = b"".join(chunks).decode()
    finally:
        stream.close()
        os.close(master)
    assert "fit" in out and "10/10" in out, repr(out)
    assert ("|" in out) is redraws  # tqdm's bar has a | ... | track; the plain lines have none


def test_disabled_bars_write_nothing(capsys):
    bar = progress_bar(total=3, desc="label", unit="mol", enabled=False)
    bar.update(3)
    bar.close()
    logger = logging.getLogger("levelup")
    before = logger.level
    logger.setLevel(logging.ERROR)  # a silenced levelup shows no bars either
    try:
        bar = progress_bar(total=3, desc="label", unit="mol")
        bar.update(3)
        bar.close()
    finally:
        logger.setLevel(before)
    assert capsys.readouterr().err == ""


def test_cli_verbosity_sets_the_levelup_logger(capsys):
    log = logging.getLogger("levelup.qm.run")  # a per-module child logger
    for verbose, shown in [(0, {"warning"}), (1, {"warning", "info"}),
                           (2, {"warning", "info", "debug"})]:
        with log_to_stderr(verbose):
            log.warning("warning")
            log.info("info")
            log.debug("debug")
        assert set(capsys.readouterr().err.split()) == shown
    assert not any(isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
                   for h in logging.getLogger("levelup").handlers)  # removed after
