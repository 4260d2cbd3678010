"""The bad-input table of RELIABILITY.md: every case of tests/reliability_cases.py run as a real
``levelup`` subprocess in a fresh temporary folder, written as a Markdown table (id, command,
exit code, the one-line error) to stdout or to --out.

    python bench/reliability_table.py --out bench/reliability_table.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability_cases import (  # noqa: E402
    CASES,
    created_or_changed,
    describe,
    fill,
    make_fixtures,
    snapshot,
)


def run_case(argv: list[str], expected: str, tmp: Path) -> dict:
    """Run one case in ``tmp`` (fresh fixtures); what happened."""
    fixtures = make_fixtures(tmp)
    before = snapshot(tmp)
    env = dict(os.environ, LEVELUP_CACHE_DIR=str(tmp / "cache"))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "levelup.cli.main", "-q",
                           *fill(argv, fixtures)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = proc.stderr.strip().splitlines()
    error = lines[-1] if lines else ""
    ok = (proc.returncode == 1 and len(lines) == 1 and error.startswith("levelup: error: ")
          and expected in error and "Traceback" not in proc.stderr
          and not created_or_changed(before, tmp))
    shown = error.replace(str(tmp) + "/", "")  # fixture paths by their names, as in the command
    return {"command": describe(argv, fixtures), "code": proc.returncode, "error": shown,
            "ok": ok, "seconds": time.perf_counter() - start, "stderr_lines": len(lines)}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(results: list[tuple[str, dict]]) -> str:
    rows = ["| id | command | exit | error (one line) | ok |", "|---|---|---|---|---|"]
    for cid, r in results:
        rows.append(f"| {cid} | `{_cell(r['command'])}` | {r['code']} | {_cell(r['error'])} | "
                    f"{'yes' if r['ok'] else '**no**'} |")
    passed = sum(r["ok"] for _, r in results)
    rows.append("")
    rows.append(f"{passed} of {len(results)} cases: exit 1, one line `levelup: error: ...` with "
                "the expected words, no traceback, no file created or changed.")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="Markdown file to write (default: stdout)")
    parser.add_argument("--only", nargs="*", default=[], help="case ids (substrings) to run")
    args = parser.parse_args(argv)
    results = []
    for cid, case_argv, expected in CASES:
        if args.only and not any(o in cid for o in args.only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            results.append((cid, run_case(case_argv, expected, Path(tmp))))
        print(f"{cid}: {'ok' if results[-1][1]['ok'] else 'NOT OK'} "
              f"({results[-1][1]['seconds']:.1f} s)", file=sys.stderr)
    text = table(results)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0 if all(r["ok"] for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
