"""When each phase of one command starts and ends, from its ``--json`` events stamped as they arrive.

Usage: python benchmarks/timeline.py -- immutable-installer install --skip-wheelhouse --force --keep 0 --json
Prints seconds since the start for every phase and phase end, the first and last progress of each phase, and
the exit; progress in between is left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        at = time.monotonic() - started
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "progress":
            if event["done"] in (1, event["total"]):
                print(f"{at:7.2f}  progress {event['phase']} {event['done']}/{event['total']}")
        elif kind in ("phase", "phase_done"):
            print(f"{at:7.2f}  {kind:10} {event['name']}  {event.get('message', '')}")
    code = proc.wait()
    print(f"{time.monotonic() - started:7.2f}  exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
