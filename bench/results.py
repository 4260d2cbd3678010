"""Write one benchmark's section of bench/RESULTS.md, leaving the other sections as they are.

Each section sits between ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` markers.
"""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script named in it; numbers are from one run on the machine "
    "named there. Ratios taken side by side in one run are what count; absolute times drift.\n"
)


def write_section(name: str, title: str, body: str, command: str) -> None:
    """Replace (or append) section ``name`` of bench/RESULTS.md."""
    import os

    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    block = (
        f"<!-- begin {name} -->\n## {title}\n\n"
        f"Command: `{command}` ({stamp}; {machine})\n\n{body.strip()}\n<!-- end {name} -->\n"
    )
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->\n?",
                         re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    RESULTS.write_text(text)
