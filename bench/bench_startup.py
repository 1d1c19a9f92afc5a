"""Start-up cost of `gpuspend --report` on an empty database (what a cron job pays every run).

Baseline in the same run: `python -c pass` (the interpreter alone). Target: report wall median < 0.3 s.
Also lists whether heavy modules (textual, rich, httpx, sqlite_utils) were imported.
    python bench/bench_startup.py [runs]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median_ms

PROBE = ("import sys\nfrom gpuspend.cli import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "heavy = sorted(m for m in ('textual', 'rich', 'httpx', 'sqlite_utils', 'yaml', 'prometheus_client') "
         "if m in sys.modules)\nprint('imported:', ', '.join(heavy) or 'none', file=sys.stderr)\n")


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_CONFIG_HOME=f"{tmp}/c", XDG_DATA_HOME=f"{tmp}/d", NO_COLOR="1")
        db = Path(tmp) / "empty.db"
        report = [sys.executable, "-m", "gpuspend", "--db", str(db), "--report", "--no-sample"]
        subprocess.run(report, env=env, cwd=ROOT, capture_output=True, check=True)     # create + migrate once
        base, rep = [], []
        for _ in range(runs):                     # interleaved, so machine noise hits both alike
            base.append(wall([sys.executable, "-c", "pass"], env))
            rep.append(wall(report, env))
        probe = subprocess.run([sys.executable, "-c", PROBE, "--db", str(db), "--report", "--no-sample"],
                               env=env, cwd=ROOT, capture_output=True, text=True)
    b, r = median_ms(base), median_ms(rep)
    print(f"python -c pass            median {b:7.1f} ms  ({runs} runs)")
    print(f"gpuspend --report (empty) median {r:7.1f} ms  (+{r - b:.1f} ms over the interpreter)")
    print(f"target: report < 300 ms wall -> {'OK' if r < 300 else 'MISSED'}")
    print(probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "probe: no output")


if __name__ == "__main__":
    main()
