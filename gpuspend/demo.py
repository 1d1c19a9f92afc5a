"""The demo database: a simulated 8x H100 box with 30 days of history up to now, plus demo billing.

Built into a temporary file and moved into place, so a reader never sees half a demo. Rebuilt when the
history is stale (more than an hour behind) unless a collector is live on it (then it is kept and extended
by that collector).

First start: the recent window (RECENT_DAYS, plus the last hour raw) is built and published first, so the
dashboard has data within a second or two; the rest of the month is then backfilled a day at a time, newest
first, into the published file (`ensure_demo_db(background=True)`: a daemon thread, with a progress
callback). Each day is one transaction that also moves META_FROM back, so a backfill killed at any point
resumes where it stopped on the next start, and INSERT OR REPLACE on (gpu, minute) never counts a minute twice.

The demo only ever replaces a database marked as a demo database (META_MARKER, written when it is built):
`--demo --db real.db` (or GPUSPEND_DB) once replaced a database of imported billing without a word. Any other
existing file is refused with one line and left exactly as it was.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from gpuspend import clock, lease
from gpuspend.errors import UsageError
from gpuspend.rollup import COLLECTOR_SEEN_KEY
from gpuspend.samples import last_sample_ms
from gpuspend.store import ROLLUP_GENERATION, bump_generation, connect, get_meta, set_meta, transaction

HISTORY_DAYS = 30
STALE_MS = 3600_000
META_UNTIL = "demo.history_until_ms"
META_SEED = "demo.seed"
META_MARKER = "demo.database"      # "1": this file is a demo database; nothing else may be replaced
META_START = "demo.history_start_ms"   # where the month of history begins
META_FROM = "demo.history_from_ms"     # per-minute history is complete from here on (backfill moves it back)
RECENT_DAYS = 2                    # written before the first frame: today and yesterday (UTC days)
DAY_MS = 86_400_000

# progress(done_days, total_days): called after the recent window and after each backfilled day, from the
# thread doing the work; done == total means the month is complete.
Progress = Callable[[int, int], None]
_backfills: dict[str, threading.Thread] = {}     # one backfill per database file in this process
_backfills_lock = threading.Lock()


def _refuse(path: Path, why: str) -> UsageError:
    return UsageError(f"--demo: {path} {why}; the demo replaces only its own demo database",
                      hint="pass another --db (or unset GPUSPEND_DB) with --demo")


def _check_is_demo(path: Path) -> None:
    """Raise unless the existing file at `path` is a demo database, or holds nothing real (opened read-only:
    never migrated, never changed)."""
    try:
        conn = _read_only(path)
        try:
            demo = _is_demo(conn)
            empty = not demo and _holds_only_demo_data(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        raise _refuse(path, "is not a gpuspend demo database") from None
    if not demo and not empty:
        raise _refuse(path, "holds other data, not the demo")


def _read_only(path: Path) -> sqlite3.Connection:
    """The file as it is: never created, migrated or changed."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _is_demo(conn: sqlite3.Connection) -> bool:
    """Marked as a demo database; demo databases built before the marker carry the demo seed: those too."""
    return conn.execute("SELECT 1 FROM meta WHERE key IN (?, ?) LIMIT 1", (META_MARKER, META_SEED)).fetchone() \
        is not None


def _holds_only_demo_data(conn: sqlite3.Connection) -> bool:
    """An unmarked gpuspend database with nothing real in it (just created, or only simulated GPUs): nothing
    to lose. Real GPUs, imported billing or polled GPU-cloud data make it someone's data."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        raise sqlite3.DatabaseError("not a gpuspend database")
    if "gpus" in tables and conn.execute("SELECT 1 FROM gpus WHERE source IS NULL OR source != 'demo' "
                                         "LIMIT 1").fetchone():
        return False
    real = ("charge_lines", "charge_rows", "charges", "imports", "cloud_instances", "cloud_charges")   # before v18, v13
    return not any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in real if t in tables)


def refuse_real_data_into_demo(path: str | Path, what: str) -> None:
    """Before real samples or an import are written to `path` without --demo: refuse a demo database. Its
    GPUs and billing are simulated; real data written beside them would be summed with them, unmarked (a
    --demo run on a new or empty --db/GPUSPEND_DB makes that file a demo database)."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return
    try:
        conn = _read_only(p)
        try:
            demo = _is_demo(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return                        # not readable as a gpuspend database: connect() says why, in its line
    if demo:
        raise UsageError(f"{p} is a demo database (made by --demo): its GPUs and billing are simulated, and "
                         f"{what} would be counted with them",
                         hint="pass another --db (or unset GPUSPEND_DB); with --demo it writes to the demo")


def claim_for_demo(path: str | Path) -> None:
    """Before simulated samples are written to `path`: refuse a database that is not a demo one; mark a new
    one as a demo database."""
    p = Path(path)
    if p.exists() and p.stat().st_size > 0:
        _check_is_demo(p)           # a demo database, or one with nothing real in it (marked below)
    conn = connect(p)
    try:
        with transaction(conn):
            set_meta(conn, META_MARKER, "1")
    finally:
        conn.close()


def _is_fresh(path: Path, now_ms: int, seed: int) -> bool:
    _check_is_demo(path)
    conn = connect(path)
    try:
        until = get_meta(conn, META_UNTIL)
        if until is None:
            return False
        if get_meta(conn, META_SEED) != str(seed):
            return False
        holder = lease.holder(conn, now_ms)
        if holder is not None and not holder.stale:
            return True               # a demo collector keeps it current
        latest = last_sample_ms(conn) or int(until)
        return now_ms - max(int(until), latest) <= STALE_MS
    finally:
        conn.close()


def build_demo_db(path: str | Path, now_ms: int, seed: int = 42, *, recent_only: bool = False,
                  progress: Progress | None = None, days: int | None = None) -> Path:
    """Write a fresh demo database at `path` (replacing it atomically). With `recent_only`, only the recent
    window's per-minute history is written before it is published; backfill_demo_db writes the rest."""
    from gpuspend.collectors.simulated import generate_history

    target = Path(path)
    if target.exists() and target.stat().st_size > 0:
        _check_is_demo(target)          # every caller: never replace a database that is not a demo
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        # A private file until os.replace below: a crash loses only the temporary file, so no syncs.
        conn.execute("PRAGMA synchronous = OFF")
        start = now_ms - (HISTORY_DAYS if days is None else days) * DAY_MS
        first = max(start, (now_ms // DAY_MS - (RECENT_DAYS - 1)) * DAY_MS)
        generate_history(conn, start, now_ms, seed, minutes_from_ms=first)
        _import_billing(conn, now_ms)
        with transaction(conn):
            set_meta(conn, META_UNTIL, str(now_ms))
            set_meta(conn, META_SEED, str(seed))
            set_meta(conn, META_MARKER, "1")
            set_meta(conn, META_START, str(start))
            set_meta(conn, META_FROM, str(first))
            set_meta(conn, COLLECTOR_SEEN_KEY, str(now_ms))   # the simulated collector ran until now
        if not recent_only:
            _report(progress, start, first, now_ms)
            _backfill(conn, seed, progress)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    if recent_only:
        _report(progress, start, first, now_ms)        # published: there is data to show
    return target


def _report(progress: Progress | None, start: int, first: int, until: int) -> None:
    if progress is not None:
        progress(*_days(start, first, until))


def _days(start: int, first: int, until: int) -> tuple[int, int]:
    # Whole days back from `until` (the history spans exactly HISTORY_DAYS, so done reaches total exactly
    # when complete, one step per backfilled day).
    return (until - first) // DAY_MS, (until - start) // DAY_MS


def history_progress(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """(days written, days in the month of history) of a demo database, None when it is not one. Lets a
    dashboard opened on a half-backfilled demo say so (done < total) without having started the backfill."""
    start, first, until = (get_meta(conn, k) for k in (META_START, META_FROM, META_UNTIL))
    if start is None or first is None or until is None:
        return None
    return _days(int(start), int(first), int(until))


def _backfill(conn: sqlite3.Connection, seed: int, progress: Progress | None,
              stop: threading.Event | None = None) -> bool:
    """Write the per-minute history missing before META_FROM, one UTC day per transaction, newest first.
    True when complete (False: stopped)."""
    from gpuspend.collectors.simulated import backfill_minutes

    start, first, until = (get_meta(conn, k) for k in (META_START, META_FROM, META_UNTIL))
    if start is None or first is None or until is None:
        return True                       # built before the backfill existed: complete in one go
    start_ms, first_ms = int(start), int(first)
    while first_ms > start_ms:
        if stop is not None and stop.is_set():
            return False
        chunk = max(start_ms, (first_ms - 1) // DAY_MS * DAY_MS)
        with transaction(conn):
            backfill_minutes(conn, chunk, first_ms, seed)
            set_meta(conn, META_FROM, str(chunk))
            bump_generation(conn, ROLLUP_GENERATION)    # minutes behind the watermark: cached sums go
        first_ms = chunk
        _report(progress, start_ms, first_ms, int(until))
    return True


def backfill_demo_db(path: str | Path, seed: int = 42, progress: Progress | None = None,
                     stop: threading.Event | None = None) -> bool:
    """Complete a published demo database's month of history (safe beside readers and a demo collector:
    WAL, short per-day transactions on minutes older than anything they write). True when complete."""
    p = Path(path)
    _check_is_demo(p)
    conn = connect(p)
    try:
        return _backfill(conn, seed, progress, stop)
    finally:
        conn.close()


def _start_background(path: Path, now_ms: int, seed: int, build: bool, progress: Progress | None) -> None:
    """Build (when `build`) and backfill in a child process: its own interpreter, so on a 2-core box the
    dashboard imports Textual on one core while the history is written on the other, and the backfill never
    holds the dashboard's GIL; it also finishes if the dashboard is quit. Returns once the database is
    published (the child's first line); its progress lines are relayed to `progress` by a daemon thread."""
    key = str(path.resolve())
    with _backfills_lock:
        running = _backfills.get(key)
        if running is not None and running.is_alive():
            return
        child = subprocess.Popen([sys.executable, "-m", "gpuspend.demo", "--background", key, str(seed),
                                  str(now_ms), "1" if build else "0", str(HISTORY_DAYS)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, start_new_session=True)
        assert child.stdout is not None
        stdout = child.stdout

        def relay(line: str) -> bool:
            parts = line.split()
            if progress is not None and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                progress(int(parts[0]), int(parts[1]))
            return parts == ["ready"]

        for line in stdout:
            if relay(line):
                break
        else:
            child.wait()
            if build:                        # it failed: build here, so the error reaches the user
                build_demo_db(path, now_ms, seed, recent_only=True, progress=progress)
            # and still complete the month (in a thread: slower, but a first start never shows a day and a
            # half of history as the whole month, an idle episode cut to where the window begins)
            _backfills[key] = thread = threading.Thread(target=_backfill_quietly, args=(path, seed, progress),
                                                        daemon=True, name="gpuspend-demo-backfill")
            thread.start()
            return

        def relay_rest() -> None:
            for line in stdout:
                relay(line)
            child.wait()

        thread = threading.Thread(target=relay_rest, daemon=True, name="gpuspend-demo-backfill")
        _backfills[key] = thread
        thread.start()


def _backfill_quietly(path: Path, seed: int, progress: Progress | None) -> None:
    try:
        backfill_demo_db(path, seed, progress)
    except Exception:  # noqa: BLE001 - nowhere to show it under a dashboard; the next start resumes it
        pass


def _background_main(path: str, seed: int, now_ms: int, build: bool, days: int) -> int:
    """The child: "ready" once the database is published, then "done total" per backfilled day. One child
    per file at a time (a lock file beside it); still finishing if the parent stopped reading."""
    import fcntl

    def say(*words: object) -> None:
        try:
            print(*words, flush=True)
        except (BrokenPipeError, OSError):
            pass                      # the dashboard is gone: the history is still worth finishing

    # A first start on a fresh machine: the data folder does not exist yet (the lock file beside the database
    # could not be created, the child died before "ready", and the month was never backfilled).
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.backfill.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if build else fcntl.LOCK_NB))
        except OSError:
            say("ready")              # another process is backfilling this file
            return 0
        try:
            p = Path(path)
            if build and not (p.exists() and p.stat().st_size > 0 and _is_fresh(p, now_ms, seed)):
                build_demo_db(p, now_ms, seed, recent_only=True, progress=say, days=days)
            say("ready")
            backfill_demo_db(p, seed, say)
        except Exception:             # nothing to show it on: the parent builds itself, or the next start resumes
            return 3
        Path(lock.name).unlink(missing_ok=True)     # done; a racing second backfill would only REPLACE rows
    return 0


def _import_billing(conn, now_ms: int) -> None:
    try:
        from gpuspend.collectors.billing.demo import import_demo_billing
    except ImportError:
        # Demo billing ships with the billing collectors; without them the demo has metered costs only.
        print("gpuspend: demo: billing demo data not available; showing metered costs only", file=sys.stderr)
        return
    import_demo_billing(conn, now_ms)
    # The demo box is that export's EC2 instance: record its id so its GPUs are priced from the billing
    # (billing-derived rate), as a real box is through its asset tag or `billing.resource_id`.
    from gpuspend.collectors.billing.demo import DEMO_INSTANCE
    from gpuspend.pricing import META_RESOURCE_ID

    with transaction(conn):
        set_meta(conn, META_RESOURCE_ID, DEMO_INSTANCE)


def ensure_demo_db(path: str | Path, now_ms: int | None = None, seed: int = 42, *, background: bool = False,
                   progress: Progress | None = None) -> Path:
    """The demo database at `path`, (re)built if missing or stale, with its whole month of history. With
    `background` (the dashboard), return as soon as the recent window is published and complete the month in
    a child process, reporting through `progress`; a backfill cut short earlier is resumed. Returns its path.
    Raises UsageError, before anything is written, for a file that is not a demo database."""
    now = clock.now_ms() if now_ms is None else now_ms
    p = Path(path)
    fresh = p.exists() and p.stat().st_size > 0 and _is_fresh(p, now, seed)
    if background:
        _start_background(p, now, seed, not fresh, progress)
    elif not fresh:
        build_demo_db(p, now, seed, progress=progress)
    else:
        backfill_demo_db(p, seed, progress)      # a no-op when complete; finishes one cut short
    return p


if __name__ == "__main__":          # python -m gpuspend.demo --background PATH SEED NOW_MS BUILD DAYS
    if len(sys.argv) == 7 and sys.argv[1] == "--background":
        sys.exit(_background_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1",
                                  int(sys.argv[6])))
    sys.exit(2)
