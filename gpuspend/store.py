"""The SQLite store: the only channel between collectors (writers) and costing/TUI/report (readers).

WAL so readers never block the collector; a generous busy_timeout so nobody sees "database is locked";
schema version in PRAGMA user_version with forward-only migrations (MIGRATIONS[i] takes version i to i+1).
Times: sample/alert timestamps are UTC epoch milliseconds, billing times are UTC epoch seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gpuspend.errors import DataError, UsageError

BUSY_TIMEOUT_MS = 15_000
# meta key: a counter every writer of `charges`/`imports` bumps in its own transaction (bump_generation), so a
# reader may keep what it derived from billing rows across other commits (gpuspend.costing.context).
BILLING_GENERATION = "billing.generation"
# meta key: bumped by each price refresh that stores rows (the cost engine's merged price catalog follows it).
PRICES_GENERATION = "prices.generation"
# meta key: bumped by each writer of rollup rows behind the watermark (a rebuild moving it back, the demo's history
# backfill), in its own transaction: sums of final rollup rows are cached across commits on it (costing.store_read).
ROLLUP_GENERATION = "rollup.generation"

# v1: the foundation (GPUs, raw samples, processes, per-minute rollups, collector lease)
_V1 = """
CREATE TABLE gpus (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    idx INTEGER,
    name TEXT,
    model TEXT,                 -- normalised model key used for pricing (H100, A100-80GB, ...)
    memory_total INTEGER,       -- bytes
    power_limit REAL,           -- watts
    parent_id INTEGER REFERENCES gpus(id),  -- MIG device -> its physical GPU
    mig_gi INTEGER,
    mig_ci INTEGER,
    source TEXT NOT NULL DEFAULT 'nvml',    -- nvml | demo | runpod | lambda | vast
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    lost_at INTEGER             -- set when NVML reports the GPU lost; cleared when it answers again
);
-- Raw samples are keyed time-first: every tick appends at the end of the B-tree (full pages, no separate
-- ts index). Since v11 a row is a run of samples (gpuspend.samples reads and writes them).
CREATE TABLE gpu_samples (
    gpu_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    util REAL, mem_util REAL, mem_used INTEGER, power REAL, energy_mj INTEGER,
    temperature REAL, sm_clock INTEGER,
    PRIMARY KEY (ts, gpu_id)
) WITHOUT ROWID;
CREATE TABLE processes (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER,            -- process start time (s) so a reused pid is a new process
    user TEXT,
    command TEXT,
    UNIQUE (host, pid, started)
);
CREATE TABLE process_samples (
    gpu_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    proc_id INTEGER NOT NULL,
    used_memory INTEGER,
    sm_util REAL,
    PRIMARY KEY (ts, gpu_id, proc_id)
) WITHOUT ROWID;
CREATE TABLE gpu_minutes (
    gpu_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,    -- epoch ms of the minute start
    samples INTEGER NOT NULL,
    covered_s REAL NOT NULL,    -- seconds of this minute covered by samples (gaps excluded)
    util_avg REAL, util_max REAL, mem_util_avg REAL, mem_used_avg REAL, power_avg REAL,
    energy_j REAL,
    busy_s REAL NOT NULL DEFAULT 0,
    held_idle_s REAL NOT NULL DEFAULT 0,
    free_idle_s REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (gpu_id, minute)
) WITHOUT ROWID;
CREATE INDEX gpu_minutes_minute ON gpu_minutes(minute);
CREATE TABLE process_minutes (
    gpu_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    proc_id INTEGER NOT NULL,
    share_s REAL NOT NULL,      -- GPU-seconds attributed to this process (SM share, else memory share)
    idle_share_s REAL NOT NULL, -- of which while the GPU was idle (held-idle waste)
    mem_used_avg REAL,
    PRIMARY KEY (gpu_id, minute, proc_id)
) WITHOUT ROWID;
CREATE INDEX process_minutes_minute ON process_minutes(minute);
CREATE TABLE collector_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    owner TEXT NOT NULL,        -- daemon | tui | report
    started INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL,
    interval_s REAL NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
"""

# v2: billing exports
_V2 = """
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,           -- focus | aws-cur | aws-cur2 | gcp | azure
    source TEXT NOT NULL,           -- provider / export identity used for replacement
    account TEXT,
    billing_period_start INTEGER,   -- epoch s
    billing_period_end INTEGER,
    version_id TEXT,                -- manifest assemblyId / executionId, when known
    rows INTEGER NOT NULL,
    gpu_rows INTEGER NOT NULL DEFAULT 0,
    skipped_rows INTEGER NOT NULL DEFAULT 0,
    coverage_end INTEGER,           -- latest charge_period_end in the file (epoch s)
    imported_at INTEGER NOT NULL    -- epoch s
);
CREATE INDEX imports_period ON imports(source, account, billing_period_start);
CREATE INDEX imports_sha ON imports(sha256);
CREATE TABLE charges (
    id INTEGER PRIMARY KEY,
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    line INTEGER,
    billing_account TEXT, sub_account TEXT,
    billing_period_start INTEGER, billing_period_end INTEGER,
    charge_period_start INTEGER, charge_period_end INTEGER,
    charge_category TEXT, charge_class TEXT, charge_type TEXT,
    billed_cost REAL, effective_cost REAL, list_cost REAL, currency TEXT,
    service TEXT, sku TEXT, sku_description TEXT, resource_id TEXT, instance_type TEXT,
    region TEXT, quantity REAL, unit TEXT, tags TEXT,
    is_gpu INTEGER NOT NULL DEFAULT 0, gpu_model TEXT, gpu_count REAL
);
CREATE INDEX charges_import ON charges(import_id);
CREATE INDEX charges_period ON charges(billing_period_start, currency);
CREATE INDEX charges_charge_start ON charges(charge_period_start);
"""

# v3: alerts and their notification outbox (state shared by every sender, so each goes out once)
_V3 = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,             -- idle | budget | spike | collector | stale
    subject TEXT NOT NULL,          -- gpu uuid, budget:80:forecast:2026-11:USD, billing, catalog, ...
    state TEXT NOT NULL,            -- open | resolved
    started INTEGER NOT NULL,       -- epoch ms
    ended INTEGER,
    dollars REAL,
    currency TEXT,
    title TEXT NOT NULL DEFAULT '',
    details TEXT,                   -- JSON: what the message shows (gpu, holders, idle for, ...)
    updated INTEGER NOT NULL,
    last_notified INTEGER,
    repeats INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alerts_one_open ON alerts(kind, subject) WHERE state = 'open';
CREATE INDEX alerts_state ON alerts(state, kind);
CREATE INDEX alerts_subject ON alerts(kind, subject, started);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    event TEXT NOT NULL,            -- open | repeat:N | resolved
    payload TEXT NOT NULL,          -- JSON, target-neutral; rendered per target kind at delivery
    created INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed (4xx: never retried)
    claimed_by TEXT,                -- sender that holds it until next_attempt (claim = lease)
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT,                -- never holds the URL or token
    UNIQUE (alert_id, target, event)
);
CREATE INDEX notifications_pending ON notifications(status, next_attempt);
CREATE TABLE run_rate_hours (       -- observed run rate per hour: the 7-day baseline for spend spikes
    hour INTEGER NOT NULL,          -- epoch ms of the hour start
    currency TEXT NOT NULL,
    rate_sum REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, currency)
) WITHOUT ROWID;
"""

# v4: remote instances from GPU-cloud APIs (RunPod, Lambda, Vast.ai)
_V4 = """
CREATE TABLE cloud_instances (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    name TEXT,
    gpu_model TEXT,
    gpu_count REAL,
    price_per_hour REAL,            -- what the provider reports for the whole instance
    currency TEXT NOT NULL DEFAULT 'USD',
    status TEXT,
    util REAL,
    first_seen INTEGER NOT NULL,    -- epoch ms
    last_seen INTEGER NOT NULL,
    UNIQUE (provider, instance_id)
);
CREATE TABLE cloud_spend (
    provider TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    ts INTEGER NOT NULL,            -- epoch ms of the poll
    price_per_hour REAL NOT NULL,
    running INTEGER NOT NULL,
    PRIMARY KEY (provider, instance_id, ts)
) WITHOUT ROWID;
CREATE TABLE cloud_charges (        -- what a provider's billing API says was charged (Vast.ai /charges)
    provider TEXT NOT NULL,
    period_start INTEGER NOT NULL,  -- epoch s, month asked for; a re-fetch replaces the month
    source TEXT NOT NULL,           -- instance-12345678
    kind TEXT NOT NULL,             -- gpu | disk | bwd | bwu
    start INTEGER,                  -- epoch s
    end INTEGER,
    amount REAL NOT NULL,
    currency TEXT NOT NULL DEFAULT 'USD',
    description TEXT,
    label TEXT,
    gpu_model TEXT,
    fetched INTEGER NOT NULL        -- epoch ms
);
CREATE INDEX cloud_charges_period ON cloud_charges(provider, period_start);
"""

# v5: empty (a slot reserved for the month work, which needed no schema): it only advances user_version.
_V5 = ""
# v6: billing imports: parts and versions. When the export wrote the file (its latest export-time cell, when
# the format has one) orders versions of a period together with coverage_end.
_V6 = """
ALTER TABLE imports ADD COLUMN export_time INTEGER;
"""
# v7: the busy-run edges of each rollup minute, so that idle episodes read from rollups equal those read from raw
# samples (gpuspend.rollup.minute_pieces), and the idle threshold the minute was rolled with. NULL on older rows.
_V7 = """
ALTER TABLE gpu_minutes ADD COLUMN busy_lead_s REAL;      -- busy seconds contiguous from the minute start
ALTER TABLE gpu_minutes ADD COLUMN busy_tail_s REAL;      -- busy seconds contiguous up to the minute end
ALTER TABLE gpu_minutes ADD COLUMN busy_run_s REAL;       -- longest busy run inside the minute (not lead/tail)
ALTER TABLE gpu_minutes ADD COLUMN busy_run_at INTEGER;   -- ms from the minute start where that run begins
ALTER TABLE gpu_minutes ADD COLUMN idle_at INTEGER;       -- ms from the minute start of the first idle second
ALTER TABLE gpu_minutes ADD COLUMN idle_pre_s REAL;       -- idle seconds before that run
ALTER TABLE gpu_minutes ADD COLUMN idle_post_at INTEGER;  -- ms from the minute start of the first idle after it
ALTER TABLE gpu_minutes ADD COLUMN idle_pct REAL;         -- idle.util_pct the minute was rolled with
"""
# alerts / data safety: while the collector's worker runs a long task (a billing re-import holding the write
# lock) the heartbeat cannot be written; collector_task says "busy until then, not stalled" so no second
# collector takes the lease over meanwhile (lease.py).
_V8 = """
CREATE TABLE collector_task (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    until INTEGER NOT NULL       -- epoch ms: the lease holder is busy in a task, not stalled, until then
);
"""
# v9: workloads (pod, Slurm job, container, Jupyter kernel) of processes, and GPUs they hold with no process
_V9 = """
CREATE TABLE workloads (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,             -- k8s-pod | slurm-job | docker | jupyter-kernel | process
    wid TEXT NOT NULL,              -- pod uid | job id | container id | kernel id | pid
    name TEXT,                      -- pod | job name | container name | notebook path (outside text, cleaned)
    namespace TEXT,                 -- k8s namespace | Slurm account
    owner TEXT,
    team TEXT,
    detail TEXT,
    first_seen INTEGER NOT NULL,    -- epoch ms
    last_seen INTEGER NOT NULL,
    UNIQUE (host, kind, wid)
);
ALTER TABLE processes ADD COLUMN workload_id INTEGER REFERENCES workloads(id);
CREATE TABLE workload_gpus (        -- a GPU a workload holds (container DeviceRequests, Slurm GRES), process or not
    gpu_id INTEGER NOT NULL,
    workload_id INTEGER NOT NULL REFERENCES workloads(id),
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,       -- last sample it was seen held at; extended while seen without a gap
    PRIMARY KEY (gpu_id, workload_id, first_ms)
) WITHOUT ROWID;
CREATE INDEX workload_gpus_last ON workload_gpus(last_ms);
CREATE TABLE gpu_orphans (          -- GPU memory held with no live process (NVML lists none, or only exited pids)
    gpu_id INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    mem_used INTEGER,               -- bytes, the most seen
    last_proc_id INTEGER,           -- the last process seen on this GPU before (NULL: never seen)
    PRIMARY KEY (gpu_id, first_ms)
) WITHOUT ROWID;
"""
# v10: price history: every fetched price, one price_fetches row per source per successful refresh; the
# current prices of a source are its last fetch, so a failing source (which writes nothing) keeps its rows.
_V10 = """
CREATE TABLE price_fetches (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,           -- azure | skypilot-aws | runpod | vast | lambda ...
    url TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,    -- epoch ms
    rows INTEGER NOT NULL
);
CREATE INDEX price_fetches_source ON price_fetches(source, id);
CREATE TABLE price_history (
    fetch_id INTEGER NOT NULL REFERENCES price_fetches(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    gpu TEXT NOT NULL,              -- model key (gpuspend.gpu_models), form factor where known
    sku TEXT NOT NULL,
    region TEXT,
    gpus_per_instance REAL NOT NULL,
    usd_per_hour REAL NOT NULL,     -- the whole instance / offer
    kind TEXT NOT NULL DEFAULT 'list',  -- list | market (a median of offers, Vast.ai)
    source_url TEXT NOT NULL,
    fetched_at INTEGER NOT NULL     -- epoch ms
);
CREATE INDEX price_history_fetch ON price_history(fetch_id);
CREATE INDEX price_history_key ON price_history(provider, gpu, sku, fetched_at);
"""

# v11: raw samples as runs (gpuspend.samples): a gpu_samples row stands for the consecutive samples of one GPU
# from `ts` to `ts + span_ms` inside one minute (n of them; `dts`: their steps when not regular), each value
# a plain number while it did not change, else packed per sample; process_samples rows follow their GPU row.
# Existing rows (one per sample) are repacked afterwards, by the collector (below). Raw per GPU-day at 1 s:
# 0.6 MB on the demo box, 1.4 MB when every value changes at every sample (5.5 MB before; bench/bench_dbsize.py).
_V11 = """
ALTER TABLE gpu_samples ADD COLUMN span_ms INTEGER NOT NULL DEFAULT 0;   -- last sample - first sample (ms)
ALTER TABLE gpu_samples ADD COLUMN n INTEGER NOT NULL DEFAULT 1;         -- samples in the run
ALTER TABLE gpu_samples ADD COLUMN dts BLOB;                             -- steps (u16 ms) when irregular
ALTER TABLE gpu_samples ADD COLUMN energy_end INTEGER;                   -- energy counter at the last sample
"""


# The repack itself is not done here: 7 days at 1 s is about a minute of work, and one transaction that long
# would keep every other process waiting for the write lock (a reader opening the store would time out).
# Rows of the old layout read the same (a run of one sample), so the step only notes which hours to repack;
# the collector's rollup task repacks them an hour per transaction (gpuspend.rollup.repack_pending).
REPACK_KEY = "raw_repack"          # meta: "<next ms>:<end ms>", the raw rows still to repack


def _v11_repack(conn: sqlite3.Connection) -> None:
    lo, hi = conn.execute("SELECT MIN(ts), MAX(ts) FROM gpu_samples").fetchone()
    if lo is not None:
        # the newest row's hour is left as it is: a collector started after this step may be extending runs there
        end = hi // 3600_000 * 3600_000
        if end > lo:
            set_meta(conn, REPACK_KEY, f"{lo}:{end}")


# v12: billing imports write less per row. No query reads `charges` by charge_period_start alone (month and
# report queries go by billing period, pricing by resource), and keeping that index, in random key order, cost
# as much as the inserts themselves; the two left take keys in insert order, so a bulk import keeps them
# up to date row by row, overlapped with reading the file, instead of rebuilding them after it.
_V12 = """
DROP INDEX IF EXISTS charges_charge_start;
"""

# v13: billing text stored once. A month's export repeats a few hundred tags, descriptions, services and SKUs
# over a million rows (~250 of a row's ~400 bytes): the rows hold ids into `charge_texts` instead (the import
# writes 4x fewer bytes, and the store is that much smaller). Readers see the same `charges` through a view;
# rows stored before keep their texts inline (each column reads `inline text, else the text of its id`), so the
# step rewrites nothing. Columns that readers filter or group on in hot paths (resource_id, currency, the
# categories) stay inline. Rows inserted through the view (tests, older tools) keep their texts inline too.
_INTERNED_V13 = ('sub_account', 'service', 'sku', 'sku_description', 'region', 'instance_type', 'tags')
_CHARGES_VIEW_V13 = """
CREATE VIEW charges AS SELECT
    r.id,
    r.import_id,
    r.line,
    r.billing_account,
    COALESCE(r.sub_account,
             (SELECT t.text FROM charge_texts t WHERE t.id = r.sub_account_tid)) AS sub_account,
    r.billing_period_start,
    r.billing_period_end,
    r.charge_period_start,
    r.charge_period_end,
    r.charge_category,
    r.charge_class,
    r.charge_type,
    r.billed_cost,
    r.effective_cost,
    r.list_cost,
    r.currency,
    COALESCE(r.service, (SELECT t.text FROM charge_texts t WHERE t.id = r.service_tid)) AS service,
    COALESCE(r.sku, (SELECT t.text FROM charge_texts t WHERE t.id = r.sku_tid)) AS sku,
    COALESCE(r.sku_description,
             (SELECT t.text FROM charge_texts t WHERE t.id = r.sku_description_tid)) AS sku_description,
    r.resource_id,
    COALESCE(r.instance_type,
             (SELECT t.text FROM charge_texts t WHERE t.id = r.instance_type_tid)) AS instance_type,
    COALESCE(r.region, (SELECT t.text FROM charge_texts t WHERE t.id = r.region_tid)) AS region,
    r.quantity,
    r.unit,
    COALESCE(r.tags, (SELECT t.text FROM charge_texts t WHERE t.id = r.tags_tid)) AS tags,
    r.is_gpu,
    r.gpu_model,
    r.gpu_count
FROM charge_rows r;
CREATE TRIGGER charges_insert INSTEAD OF INSERT ON charges BEGIN
    INSERT INTO charge_rows (
        id, import_id, line, billing_account, sub_account, billing_period_start, billing_period_end,
        charge_period_start, charge_period_end, charge_category, charge_class, charge_type, billed_cost,
        effective_cost, list_cost, currency, service, sku, sku_description, resource_id, instance_type, region,
        quantity, unit, tags, is_gpu, gpu_model, gpu_count)
    VALUES (
        NEW.id, NEW.import_id, NEW.line, NEW.billing_account, NEW.sub_account, NEW.billing_period_start,
        NEW.billing_period_end, NEW.charge_period_start, NEW.charge_period_end, NEW.charge_category,
        NEW.charge_class, NEW.charge_type, NEW.billed_cost, NEW.effective_cost, NEW.list_cost, NEW.currency,
        NEW.service, NEW.sku, NEW.sku_description, NEW.resource_id, NEW.instance_type, NEW.region,
        NEW.quantity, NEW.unit, NEW.tags, COALESCE(NEW.is_gpu, 0), NEW.gpu_model, NEW.gpu_count); END;
CREATE TRIGGER charges_delete INSTEAD OF DELETE ON charges BEGIN DELETE FROM charge_rows WHERE id = OLD.id; END;
"""
_V13 = """
CREATE TABLE charge_texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
ALTER TABLE charges RENAME TO charge_rows;
ALTER TABLE charge_rows ADD COLUMN sub_account_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN service_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN sku_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN sku_description_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN region_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN instance_type_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN tags_tid INTEGER;
""" + _CHARGES_VIEW_V13

# v14: resource ids and billing accounts stored once too. An export repeats each resource's id on every hourly
# line item (a month's CUR names an instance 700+ times, in an ARN of ~70 bytes) and its payer account on every
# row: they go to `charge_texts` like the texts of v13, which makes rows ~25% smaller and the import ~5% faster.
# `charges` reads the same; rows stored before keep theirs inline. Readers that look rows up by resource id go
# through resource_match, which matches the stored text ids once instead of resolving every row's id.
INTERNED_FIELDS = (*_INTERNED_V13, 'billing_account', 'resource_id')
_V14 = """
ALTER TABLE charge_rows ADD COLUMN billing_account_tid INTEGER;
ALTER TABLE charge_rows ADD COLUMN resource_id_tid INTEGER;
DROP VIEW charges;
""" + _CHARGES_VIEW_V13.replace(
    "    r.billing_account,\n",
    "    COALESCE(r.billing_account,\n             (SELECT t.text FROM charge_texts t WHERE t.id = r.billing_account_tid)) AS billing_account,\n"
).replace(
    "    r.resource_id,\n",
    "    COALESCE(r.resource_id,\n             (SELECT t.text FROM charge_texts t WHERE t.id = r.resource_id_tid)) AS resource_id,\n")


def resource_match(rid: str) -> tuple[str, tuple[str, ...]]:
    """SQL condition on `charge_rows` (and its arguments) for the rows of one billed resource: its id, or an
    ARN/path ending in it, whether stored inline (rows before v14) or as a `charge_texts` id. The ids are
    matched once, in the texts table, not by resolving every row's id through the `charges` view (4x slower
    over a month of rows)."""
    tail = "%/" + rid
    return ("(resource_id_tid IN (SELECT id FROM charge_texts WHERE text = ? OR text LIKE ?) "
            "OR resource_id = ? OR resource_id LIKE ?)", (rid, tail, rid, tail))


# v15: a month's rows found through their imports. Every import row is one billing period's slice (the importer
# keys slices by source, account and period start), so the rows of the periods in a month are the rows of those
# imports, reached by charges_import. The second index, on each row's own period, duplicated that. It was over
# half of a bulk import's index rebuild and 12% of the store's bytes, and the month reads no slower without it
# (bench/bench_report.py: 706 ms against 715 ms with it).
_V15 = """
DROP INDEX IF EXISTS charges_period;
"""


def period_match(start_s: int, end_s: int) -> tuple[str, tuple[int, int]]:
    """SQL condition on `charge_rows` (and its arguments) for the rows of the billing periods that start in
    [start_s, end_s): those of the periods' imports (store v15)."""
    return ("import_id IN (SELECT id FROM imports WHERE billing_period_start >= ? AND billing_period_start < ?)",
            (start_s, end_s))


# v16: a purchase's frequency (FOCUS ChargeFrequency; from the line item type in an AWS CUR), kept on Purchase
# rows only (NULL elsewhere: no bytes, nothing bound on import). An hourly Savings Plan recurring fee is a
# Purchase that accrues every hour of the month, unlike an upfront fee: the month projects it (costing/month.py).
_V16 = """
ALTER TABLE charge_rows ADD COLUMN charge_frequency TEXT;
DROP VIEW charges;
""" + _V14[_V14.index("CREATE VIEW"):].replace(
    "    r.charge_type,\n", "    r.charge_type,\n    r.charge_frequency,\n").replace(
    "charge_class, charge_type, billed_cost,", "charge_class, charge_type, charge_frequency, billed_cost,").replace(
    "NEW.charge_class, NEW.charge_type, NEW.billed_cost,", "NEW.charge_class, NEW.charge_type, NEW.charge_frequency, "
    "NEW.billed_cost,")

# v17: the purchases an AWS CUR import stored before v16 get the frequency their line item type (kept in
# charge_type) says, as collectors/billing/aws_cur.FREQUENCY maps it today: a Savings Plan's hourly fee
# imported before v16 is projected as every day's spend without importing the file again. FOCUS, Azure and
# Google rows keep NULL (their frequency was not stored); that is read as once, as before.
_V17 = """
UPDATE charge_rows SET charge_frequency = CASE lower(charge_type)
    WHEN 'savingsplanrecurringfee' THEN 'Recurring' WHEN 'rifee' THEN 'Recurring' ELSE 'One-Time' END
WHERE charge_frequency IS NULL AND charge_category = 'Purchase'
  AND lower(charge_type) IN ('savingsplanrecurringfee', 'rifee', 'fee', 'savingsplanupfrontfee');
"""

# v18: a line item's description stored once, not on each of its hours. A month's export repeats each
# resource's line item every hour (a CUR names an instance 720 times a month with the same account, service,
# SKU, tags, GPU verdict...), so a row of `charge_lines` holds its hour, its amounts and its item's id, and the
# item's ~30 descriptor columns live in `charge_items` (one per distinct item per import). The store is about
# half the size (200k CUR 2.0 rows: 22 -> 11 MB) and an import writes that much less. `charge_rows` is now the view that joins them, with the same
# columns as the table it replaces, so every reader reads it as before (CROSS JOIN: the lines stay the outer
# loop, reached by import as before, each item found by its id). Rows stored before become one item each.
_ITEM_COLUMNS = ("billing_account", "billing_account_tid", "sub_account", "sub_account_tid", "billing_period_start",
                 "billing_period_end", "charge_category", "charge_class", "charge_type", "charge_frequency",
                 "currency", "service", "service_tid", "sku", "sku_tid", "sku_description", "sku_description_tid",
                 "resource_id", "resource_id_tid", "instance_type", "instance_type_tid", "region", "region_tid",
                 "unit", "tags", "tags_tid", "is_gpu", "gpu_model", "gpu_count")
LINE_COLUMNS = ("charge_period_start", "charge_period_end", "billed_cost", "effective_cost", "list_cost", "quantity")
# The old table's columns in its own order: the view keeps them (readers and tests that select * see no change).
_ROW_COLUMNS_V17 = ("id", "import_id", "line", "billing_account", "sub_account", "billing_period_start",
                    "billing_period_end", "charge_period_start", "charge_period_end", "charge_category", "charge_class",
                    "charge_type", "billed_cost", "effective_cost", "list_cost", "currency", "service", "sku",
                    "sku_description", "resource_id", "instance_type", "region", "quantity", "unit", "tags", "is_gpu",
                    "gpu_model", "gpu_count", "sub_account_tid", "service_tid", "sku_tid", "sku_description_tid",
                    "region_tid", "instance_type_tid", "tags_tid", "billing_account_tid", "resource_id_tid",
                    "charge_frequency")
_TRIGGER_ITEM_COLUMNS = ("billing_account", "sub_account", "billing_period_start", "billing_period_end",
                         "charge_category", "charge_class", "charge_type", "charge_frequency", "currency", "service",
                         "sku", "sku_description", "resource_id", "instance_type", "region", "unit", "tags")


def _v18() -> str:
    items = ", ".join(_ITEM_COLUMNS)
    lines = ", ".join(LINE_COLUMNS)
    picked = ", ".join(f"l.{c}" if c in ("id", "import_id", "line", *LINE_COLUMNS) else f"i.{c}"
                       for c in _ROW_COLUMNS_V17)
    trig_items = ", ".join(_TRIGGER_ITEM_COLUMNS)
    trig_new = ", ".join(f"NEW.{c}" for c in _TRIGGER_ITEM_COLUMNS)
    charges_view = _V16[_V16.index("CREATE VIEW"):_V16.index("CREATE TRIGGER charges_insert")]
    return f"""
CREATE TABLE charge_items (
    id INTEGER PRIMARY KEY,
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    billing_account TEXT, billing_account_tid INTEGER, sub_account TEXT, sub_account_tid INTEGER,
    billing_period_start INTEGER, billing_period_end INTEGER,
    charge_category TEXT, charge_class TEXT, charge_type TEXT, charge_frequency TEXT, currency TEXT,
    service TEXT, service_tid INTEGER, sku TEXT, sku_tid INTEGER, sku_description TEXT, sku_description_tid INTEGER,
    resource_id TEXT, resource_id_tid INTEGER, instance_type TEXT, instance_type_tid INTEGER,
    region TEXT, region_tid INTEGER, unit TEXT, tags TEXT, tags_tid INTEGER,
    is_gpu INTEGER NOT NULL DEFAULT 0, gpu_model TEXT, gpu_count REAL
);
CREATE INDEX charge_items_import ON charge_items(import_id);
CREATE TABLE charge_lines (
    id INTEGER PRIMARY KEY,
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    line INTEGER,
    item_id INTEGER NOT NULL,
    charge_period_start INTEGER, charge_period_end INTEGER,
    billed_cost REAL, effective_cost REAL, list_cost REAL, quantity REAL
);
INSERT INTO charge_items (id, import_id, {items}) SELECT id, import_id, {items} FROM charge_rows;
INSERT INTO charge_lines (id, import_id, line, item_id, {lines}) SELECT id, import_id, line, id, {lines} FROM charge_rows;
DROP VIEW charges;
DROP TABLE charge_rows;
CREATE INDEX charges_import ON charge_lines(import_id);
CREATE VIEW charge_rows AS SELECT {picked}
FROM charge_lines l CROSS JOIN charge_items i ON i.id = l.item_id;
{charges_view.strip()}
CREATE TRIGGER charges_insert INSTEAD OF INSERT ON charges BEGIN
    INSERT INTO charge_items (import_id, {trig_items}, is_gpu, gpu_model, gpu_count)
    VALUES (NEW.import_id, {trig_new}, COALESCE(NEW.is_gpu, 0), NEW.gpu_model, NEW.gpu_count); INSERT INTO charge_lines
    (id, import_id, line, item_id, {lines}) VALUES (NEW.id, NEW.import_id, NEW.line, last_insert_rowid(),
    NEW.charge_period_start, NEW.charge_period_end, NEW.billed_cost, NEW.effective_cost, NEW.list_cost, NEW.quantity); END;
CREATE TRIGGER charges_delete INSTEAD OF DELETE ON charges BEGIN DELETE FROM charge_lines WHERE id = OLD.id; END;
"""


_V18 = _v18()

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13, _V14, _V15, _V16,
                         _V17, _V18]
# Python steps run after a version's statements, in the same transaction.
_AFTER: dict[int, Callable[[sqlite3.Connection], None]] = {10: _v11_repack}
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; each step in its own transaction. Returns the old version."""
    old = conn.execute("PRAGMA user_version").fetchone()[0]
    if old > SCHEMA_VERSION:
        raise DataError(
            f"database schema version {old} is newer than this gpuspend understands ({SCHEMA_VERSION})",
            hint="upgrade gpuspend",
        )
    for version in range(old, SCHEMA_VERSION):
        with transaction(conn):
            # Re-check inside the write lock: another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] != version:
                continue
            for stmt in _statements(MIGRATIONS[version]):
                conn.execute(stmt)
            if version in _AFTER:
                _AFTER[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return old


def _statements(script: str) -> Iterator[str]:
    buf: list[str] = []
    for line in script.splitlines():
        buf.append(line.split("--", 1)[0])
        if line.rstrip().endswith(";") or line.split("--", 1)[0].rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if stmt.rstrip(";").strip():
                yield stmt
            buf = []


def connect(path: str | Path, *, create: bool = True, migrate_schema: bool = True) -> sqlite3.Connection:
    """Open the store. isolation_level=None: we manage transactions explicitly (see `transaction`)."""
    p = Path(path)
    if not create and not p.exists():
        raise UsageError(f"database {p} does not exist", hint="run `gpuspend collect` or pass --db")
    if create:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the database folder {p.parent}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes (kill -9)
        conn.execute("PRAGMA foreign_keys = ON")
        if migrate_schema:
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise DataError(f"cannot open database: {exc}", where=str(p),
                        hint="is it a gpuspend database? pass another --db") from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def bump_generation(conn: sqlite3.Connection, key: str = BILLING_GENERATION) -> None:
    """Move a generation counter on; call it inside the transaction that changes the rows it stands for."""
    conn.execute("INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET "
                 "value = CAST(value AS INTEGER) + 1", (key,))


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))
