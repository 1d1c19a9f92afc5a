"""`billing.sources`: export folders that the collector daemon re-imports when they change.

Called every minute, so it must be cheap when nothing changed: a fingerprint of (path, size, mtime) of every
file under a folder is kept in `meta`; only a changed folder is hashed and imported (and the importer itself
skips files and manifest versions it already has). A bad export is reported once per change, never fatal.

The daemon imports in a child process (`reimport_task`): pyarrow and the import's buffers (~100 MB for a
large export) then live only as long as the import, and the collector itself stays at its own ~15 MB between
and during imports instead of holding pyarrow's libraries and pools for good.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gpuspend.errors import GpuspendError
from gpuspend.fmt import clean
from gpuspend.store import connect, get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.collectors.billing.importer import FileResult
    from gpuspend.config import Config

META_PREFIX = "billing.source."
CHILD_TIMEOUT_S = 3600      # a stuck child (a hung network mount) must not hold the collector's task forever


def fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _changed(conn: sqlite3.Connection, cfg: Config) -> Iterator[tuple[Path, str, str]]:
    """(folder, meta key, fingerprint) of every configured source folder whose files changed."""
    for src in list(getattr(cfg.billing, "sources", None) or []):
        folder = Path(os.path.expanduser(str(src)))
        if not folder.exists():
            continue
        key = META_PREFIX + str(folder)
        fp = fingerprint(folder)
        if get_meta(conn, key) != fp:
            yield folder, key, fp


def _remember(conn: sqlite3.Connection, key: str, fp: str) -> None:
    with transaction(conn):        # remembered even when bad: one message per change, not per minute
        set_meta(conn, key, fp)


def reimport_changed(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> list[FileResult]:
    """Import every configured source folder whose files changed since the last look. Never raises for bad data."""
    results: list[FileResult] = []
    changed = list(_changed(conn, cfg))
    if not changed:
        return results
    # The importer (pyarrow) loads only when there are folders to import: the collector stays light.
    from gpuspend.collectors.billing.importer import import_paths

    for folder, key, fp in changed:
        try:
            results.extend(import_paths(conn, [folder], now_s=now_ms // 1000,
                                        currency=getattr(cfg, "currency", None)))
        except GpuspendError as exc:
            print(f"gpuspend: billing source: {exc.line()}", file=sys.stderr)
        _remember(conn, key, fp)
    return results


def _db_file(conn: sqlite3.Connection) -> str:
    return next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")


def reimport_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    """The collector daemon's task: like `reimport_changed`, each changed folder imported by a child process.

    The child writes in its own one transaction (all or nothing, as in-process), so killing either process at
    any instant leaves the database as it was or fully imported; the fingerprint is stored after the child ends.
    """
    for folder, key, fp in list(_changed(conn, cfg)):
        cmd = [sys.executable, "-m", "gpuspend.collectors.billing.sources", _db_file(conn), str(folder),
               str(now_ms // 1000), str(getattr(cfg, "currency", None) or "")]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=CHILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"gpuspend: billing source: {clean(str(folder), 200)}: the import did not finish ({type(exc).__name__}); "
                  "nothing was written (it is retried when the folder changes)", file=sys.stderr)
        else:
            if proc.returncode in (0, 3):               # 3: bad data, said in the child's one line
                sys.stderr.write(proc.stderr)
            else:                                       # killed (memory limit) or a crash: one line, no traceback
                last = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                print(f"gpuspend: billing source: {clean(str(folder), 200)}: the import failed "
                      f"({clean(last[0], 200)}); nothing was "
                      "written (it is retried when the folder changes)", file=sys.stderr)
        _remember(conn, key, fp)


def _child(argv: list[str]) -> int:
    """`python -m gpuspend.collectors.billing.sources DB FOLDER NOW_S CURRENCY` (run by `reimport_task`)."""
    db, folder, now_s, currency = argv
    from gpuspend.collectors.billing.importer import import_paths

    conn = connect(db)
    try:
        import_paths(conn, [folder], now_s=int(now_s), currency=currency or None)
    except GpuspendError as exc:
        print(f"gpuspend: billing source: {exc.line()}", file=sys.stderr)
        return 3
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
