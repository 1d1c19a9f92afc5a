"""`billing.sources`: export folders that the collector daemon re-imports when they change.

Called every minute, so it must be cheap when nothing changed: a fingerprint of (path, size, mtime) of every
file under a folder is kept in `meta`; only a changed folder is hashed and imported (and the importer itself
skips files and manifest versions it already has). A bad export is reported once per change, never fatal.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gpuspend.errors import GpuspendError
from gpuspend.store import get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.collectors.billing.importer import FileResult
    from gpuspend.config import Config

META_PREFIX = "billing.source."


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


def reimport_changed(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> list[FileResult]:
    """Import every configured source folder whose files changed since the last look. Never raises for bad data."""
    results: list[FileResult] = []
    sources = list(getattr(cfg.billing, "sources", None) or [])
    if not sources:
        return results
    # The importer (pyarrow) loads only when there are folders to watch: the collector stays light.
    from gpuspend.collectors.billing.importer import import_paths

    for src in sources:
        folder = Path(os.path.expanduser(str(src)))
        if not folder.exists():
            continue
        key = META_PREFIX + str(folder)
        fp = fingerprint(folder)
        if get_meta(conn, key) == fp:
            continue
        try:
            results.extend(import_paths(conn, [folder], now_s=now_ms // 1000))
        except GpuspendError as exc:
            print(f"gpuspend: billing source: {exc.line()}", file=sys.stderr)
        with transaction(conn):        # remembered even when bad: one message per change, not per minute
            set_meta(conn, key, fp)
    return results
