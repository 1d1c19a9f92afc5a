"""Read and normalise a large billing file in a second process while the importing process inserts.

With a thread (importer._normalised) the normaliser's Python work and the insert's Python work take turns on
one GIL; a forked child runs them truly side by side. What crosses the pipe is the normalised batch only
(plain lists, pickled in C), never Arrow buffers or SQL. The child never touches the database: the parent's
SQLite connection is inherited but unused, and the child leaves through os._exit (multiprocessing's fork
start), so nothing of it is closed or flushed twice. Errors come back as data and are raised in the parent,
in order, as the same one-line DataError; the parent stops the child as soon as it stops reading.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gpuspend.collectors.billing import detect as detect_mod
from gpuspend.collectors.billing.normalise import Cols, columns_read, sql_ready
from gpuspend.collectors.billing.reader import Batch, Table
from gpuspend.collectors.billing.values import BadValue
from gpuspend.errors import DataError, GpuspendError

# Below this many rows a file is read in a thread: forking costs more than the overlap gains on a small file.
CHILD_MIN_ROWS = 40_000


def usable(rows_estimate: int) -> bool:
    """Fork is cheap and keeps every loaded module; only Linux forks safely with libraries loaded, and only a
    single-threaded process (the `import` command, the collector's import child): a fork copies no other
    thread, so a lock one of them held would stay held in the child."""
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return threading.active_count() == 1 and rows_estimate >= CHILD_MIN_ROWS


def _child(out: Connection, path: str, skip_bad: bool, keys: list[str], fmt: str, ctx: dict[str, Any]) -> None:
    try:
        table = Table(Path(path), skip_bad_rows=skip_bad)
        mod = detect_mod.module(fmt)
        for batch in table.batches(columns_read(mod.normalise, keys, table.header, ctx)):
            rows = sql_ready(mod.normalise(Cols(keys, table.header, batch.columns, batch.num_rows), ctx))
            bad = [(b.row, b.column, b.value, b.expected) for b in rows.bad]
            rows.bad, rows.gpu_texts = [], []          # used inside normalise only; BadValue is rebuilt there
            out.send(("batch", Batch(batch.first_line, [], batch.num_rows, batch.lines), rows, bad))
        out.send(("end", table.skipped))
    except GpuspendError as exc:
        out.send(("error", exc.message, exc.where, exc.hint))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent as one line
        out.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


def normalised(table: Table, keys: list[str], fmt: str, ctx: dict[str, Any]) -> Iterator[tuple[Batch, Any]]:
    """(batch, normalised rows) as importer._normalised yields them; `table.skipped` is filled at the end."""
    mp = multiprocessing.get_context("fork")
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=_child, args=(send, str(table.path), table.skip_bad_rows, keys, fmt, ctx),
                      name="gpuspend-billing-reader", daemon=True)
    proc.start()
    send.close()                                      # the child holds the only write end: EOF when it exits
    try:
        while True:
            try:
                msg = recv.recv()
            except EOFError:                          # killed (memory limit) before saying anything
                raise DataError(f"the reader process ended without a result (exit {proc.exitcode})",
                                where=str(table.path), hint="run again; with --debug for details") from None
            if msg[0] == "batch":
                _tag, batch, rows, bad = msg
                rows.bad = [BadValue(*b) for b in bad]
                yield batch, rows
            elif msg[0] == "end":
                table.skipped.extend(msg[1])
                return
            elif msg[0] == "error":
                raise DataError(msg[1], where=msg[2], hint=msg[3])
            else:
                raise DataError(f"cannot read the file ({msg[1]})", where=str(table.path),
                                hint="run with --debug for details")
    finally:
        recv.close()
        if proc.is_alive():
            proc.terminate()
        proc.join()
