"""Read and normalise a large billing file in a second process while the importing process inserts.

With a thread (importer._normalised) the normaliser's Python work and the insert's Python work take turns on
one GIL; a forked child runs them truly side by side. What crosses the pipe is the normalised batch only (plain
lists, pickled in C), prepared for the insert (collectors/billing/prepared.py) on whichever side has slack,
never Arrow buffers or SQL. The child never touches the database: the parent's SQLite connection is inherited
but unused, and the child leaves through os._exit (multiprocessing's fork start), so nothing of it is closed or
flushed twice. Errors come back as data and are raised in the parent, in order, as the same one-line
DataError; the parent stops the child as soon as it stops reading.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from gpuspend.collectors.billing import detect as detect_mod
from gpuspend.collectors.billing.normalise import Cols, columns_read, normalised
from gpuspend.collectors.billing.prepared import Prepared, prepared_batch
from gpuspend.collectors.billing.reader import Batch, Table
from gpuspend.collectors.billing.values import BadValue
from gpuspend.errors import DataError, GpuspendError

# Below this many rows a file is read in a thread: forking costs more than the overlap gains on a small file.
CHILD_MIN_ROWS = 40_000
# Who turns a normalised batch into insert parameters (prepared.prepare) follows who has slack: when handing
# the last batch over waited this long, the parent was still inserting, so the child prepares the next one;
# else the parent prepares it (CSV keeps the child busiest parsing, Parquet the parent inserting).
BEHIND_S = 0.002


def usable(rows_estimate: int) -> bool:
    """Fork is cheap and keeps every loaded module; only Linux forks safely with libraries loaded, and only a
    single-threaded process (the `import` command, the collector's import child): a fork copies no other
    thread, so a lock one of them held would stay held in the child."""
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return threading.active_count() == 1 and rows_estimate >= CHILD_MIN_ROWS


def _child(out: Connection, theirs: Connection, path: str, skip_bad: bool, keys: list[str], fmt: str,
           ctx: dict[str, Any]) -> None:
    # The fork gave us the importing process's read end too. Holding it, we would never see that process die
    # (kill -9): a full pipe would block our send forever, an orphan holding the database files open. Closed,
    # the send fails (broken pipe) as soon as nobody reads, and we exit.
    theirs.close()
    try:
        table = Table(Path(path), skip_bad_rows=skip_bad)
        behind = False
        mod = detect_mod.module(fmt)
        for batch in table.batches(columns_read(mod.normalise, keys, table.header, ctx)):
            rows = normalised(mod, Cols(keys, table.header, batch.columns, batch.num_rows), ctx)
            prep = None
            if behind:                                 # the parent has no slack: prepare the batch here
                _b, rows, prep = prepared_batch(batch, rows, skip_bad)
            bad = [(b.row, b.column, b.value, b.expected) for b in rows.bad]
            rows.bad, rows.gpu_texts = [], []          # used inside normalise only; BadValue is rebuilt there
            buf = ForkingPickler.dumps(("batch", Batch(batch.first_line, [], batch.num_rows, batch.lines), rows,
                                        bad, prep))
            t = time.perf_counter()
            out.send_bytes(buf)
            behind = time.perf_counter() - t > BEHIND_S
        out.send(("end", table.skipped))
    except GpuspendError as exc:
        out.send(("error", exc.message, exc.where, exc.hint))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent as one line
        out.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


# A batch pickles to 0.6-0.9 MB (reader.BATCH_BYTES, PARQUET_BATCH). Through the default 64 KB pipe, sending one
# took ~10 hand-offs between the two processes, and the child could not read on until the parent had read all
# of it: the two ran in lock step, each waiting on the other. A 1 MB pipe (Linux's unprivileged maximum) holds a
# whole batch: the child reads the next one while the parent inserts (200k FOCUS rows: 1.45 -> 1.36 s).
PIPE_BYTES = 1 << 20


def _widen(conn: Connection) -> None:
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):   # not Linux, or a lower pipe-max-size: the default pipe
        pass


class ReaderProcess:
    """(batch, normalised rows, prepared rows) as importer._normalised yields them, read by a child process that
    starts at once (the importing process hashes the file meanwhile); `table.skipped` is filled at the end.
    close() stops the child whether or not anything was read."""

    def __init__(self, table: Table, keys: list[str], fmt: str, ctx: dict[str, Any]) -> None:
        mp = multiprocessing.get_context("fork")
        self._table = table
        self._recv, send = mp.Pipe(duplex=False)
        _widen(send)
        self._proc = mp.Process(target=_child, args=(send, self._recv, str(table.path), table.skip_bad_rows, keys, fmt,
                                                     ctx),
                                name="gpuspend-billing-reader", daemon=True)
        self._proc.start()
        send.close()                                  # the child holds the only write end: EOF when it exits

    def __iter__(self) -> Iterator[tuple[Batch, Any, Prepared | None]]:
        table, recv = self._table, self._recv
        while True:
            try:
                msg = recv.recv()
            except EOFError:                          # killed (memory limit) before saying anything
                raise DataError(f"the reader process ended without a result (exit {self._proc.exitcode})",
                                where=str(table.path), hint="run again; with --debug for details") from None
            if msg[0] == "batch":
                _tag, batch, rows, bad, prep = msg
                rows.bad = [BadValue(*b) for b in bad]
                yield batch, rows, prep
            elif msg[0] == "end":
                table.skipped.extend(msg[1])
                return
            elif msg[0] == "error":
                raise DataError(msg[1], where=msg[2], hint=msg[3])
            else:
                raise DataError(f"cannot read the file ({msg[1]})", where=str(table.path),
                                hint="run with --debug for details")

    def close(self) -> None:
        self._recv.close()
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()


def reader_process(table: Table, keys: list[str], fmt: str, ctx: dict[str, Any]) -> ReaderProcess:
    return ReaderProcess(table, keys, fmt, ctx)
