"""Which files make up the current version of an export, from the cloud's manifests (never by globbing).

- AWS legacy CUR: ``<period>/<report>-Manifest.json`` (top level, rewritten on each update) names the
  current ``assemblyId`` and its ``reportKeys``; older assembly folders stay next to it and must be ignored.
- AWS CUR 2.0 / Data Exports: ``metadata/BILLING_PERIOD=YYYY-MM/*-Manifest.json`` with ``executionId`` and
  ``dataFiles`` (s3:// URIs).
- Azure exports: ``manifest.json`` with ``runInfo.runId``, ``exportConfig.type`` and ``blobs[].blobName``.
A folder without manifests is a set of independent files, each its own version.

Which version is newer, from what the manifests carry: an export time when the manifest has one (Azure
``runInfo.submittedTime``; for AWS the time fields some manifests carry, see MANIFEST_TIME_FIELDS), and for
AWS the layout itself: the period's top-level manifest (rewritten on every update) names the current
assembly, and the assembly folders beside it are older ones. So an older assembly folder imported on its own
after the current one is known to be older even though nothing in it carries a time (Unit.current/.older):
for that, and only that, the manifest one folder above a per-assembly copy is read (never a data file).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from gpuspend.collectors.billing.values import parse_ts
from gpuspend.errors import DataError, UsageError
from gpuspend.fmt import clean

DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".gz", ".json")


@dataclass
class Unit:
    """Files imported together as one version of an export."""

    files: list[Path]
    version_id: str | None = None
    dataset: str | None = None           # azure: actual | amortized (from the manifest)
    manifest: Path | None = None
    period_key: str | None = None
    notes: list[str] = field(default_factory=list)
    export_time: int | None = None       # when the cloud ran this export (Azure runInfo.submittedTime, ...)
    # AWS: the version the period's top-level manifest names as current, and the versions of the assembly /
    # execution folders beside it, which are therefore older (from the export's own layout, not names' order)
    current: str | None = None
    older: frozenset[str] = frozenset()


def is_manifest(p: Path) -> bool:
    return p.suffix.lower() == ".json" and "manifest" in p.name.lower()


def _is_data(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and not is_manifest(p) and not name.startswith(".") and name.endswith(DATA_SUFFIXES)


def _load(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"unreadable manifest ({type(exc).__name__})", where=f"{path}:1",
                        hint="fetch the export again") from None
    if not isinstance(obj, dict):
        raise DataError("manifest is not a JSON object", where=f"{path}:1")
    return obj


def _resolve(manifest: Path, key: str, root: Path) -> Path | None:
    """An S3/blob key -> the local file: the longest suffix of the key found under an ancestor folder of the
    manifest inside `root` (the folder being imported), never above it."""
    k = key.split("://", 1)[1].split("/", 1)[1] if "://" in key else key
    parts = [p for p in k.replace("\\", "/").split("/") if p]
    if any(p in ("..", ".") for p in parts):
        # A manifest names files inside its export; `..` would read anything on this machine.
        raise DataError(f"manifest entry {clean(key, 120)!r} leaves the export folder", where=f"{manifest}:1",
                        hint="a manifest lists files under its export prefix; fetch the export again")
    inside = [a for a in [manifest.parent, *list(manifest.parents)[1:5]] if a == root or root in a.parents]
    for anc in inside or [manifest.parent]:
        for i in range(len(parts)):
            cand = anc.joinpath(*parts[i:])
            if cand.is_file():
                return cand
    return None


# Time fields an AWS manifest may carry (the legacy CUR manifest documents none; Data Exports manifests and
# the GetExecution API name these). The first present one that reads as a date/time is the export time.
MANIFEST_TIME_FIELDS = ("exportTime", "dataExportTime", "exportTimestamp", "executionTime", "lastUpdatedAt",
                        "lastUpdated", "lastModified", "completedAt", "createdAt", "creationTime", "deliveryTime",
                        "generatedAt", "timestamp")


def _manifest_time(m: dict) -> int | None:
    """The export time an AWS manifest carries, if any (top level, or GetExecution's executionStatus)."""
    lower = {str(k).lower(): v for k, v in m.items()}
    status = m.get("executionStatus") or m.get("ExecutionStatus")
    if isinstance(status, dict):
        for k, v in status.items():
            lower.setdefault(str(k).lower(), v)
    for name in MANIFEST_TIME_FIELDS:
        v = lower.get(name.lower())
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            return int(v / 1000) if v > 1e11 else int(v)       # epoch ms or s
        if isinstance(v, str) and v.strip():
            try:
                return parse_ts(v)
            except (ValueError, OverflowError):
                continue                                        # not a time after all: the next field
    return None


def read_manifest(path: Path, root: Path | None = None) -> Unit:
    m = _load(path)
    keys: list[str] = []
    version = None
    dataset = None
    period = None
    export_time: int | None = None
    if "reportKeys" in m:                          # legacy CUR
        keys, version = list(m.get("reportKeys") or []), m.get("assemblyId")
        period = json.dumps(m.get("billingPeriod"), sort_keys=True)
        export_time = _manifest_time(m)
    elif "dataFiles" in m:                         # CUR 2.0 / Data Exports
        keys, version = list(m.get("dataFiles") or []), m.get("executionId")
        period = json.dumps(m.get("billingPeriod"), sort_keys=True) if m.get("billingPeriod") else None
        for f in keys:
            if "BILLING_PERIOD=" in str(f):
                period = str(f).split("BILLING_PERIOD=", 1)[1].split("/", 1)[0]
                break
        export_time = _manifest_time(m)
    elif "blobs" in m:                             # Azure
        keys = [b.get("blobName", "") for b in m.get("blobs") or [] if isinstance(b, dict)]
        version = (m.get("runInfo") or {}).get("runId")
        kind = str((m.get("exportConfig") or {}).get("type") or "")
        dataset = "amortized" if "amorti" in kind.lower() else "actual" if kind else None
        period = (m.get("runInfo") or {}).get("startDate")
        submitted = (m.get("runInfo") or {}).get("submittedTime")
        if submitted:
            try:
                export_time = parse_ts(str(submitted))
            except (ValueError, OverflowError):
                raise DataError(f"runInfo.submittedTime {clean(submitted, 60)!r} is not a date/time",
                                where=f"{path}:1", hint="fetch the export again") from None
    else:
        raise DataError("not a billing export manifest (no reportKeys, dataFiles or blobs)", where=f"{path}:1")
    files = []
    notes = []
    for k in keys:
        p = _resolve(path, str(k), root if root is not None else path.parent)
        if p is None:
            raise DataError(f"manifest lists {k} but the file is not there", where=f"{path}:1",
                            hint="wait until the export finishes delivering, or sync the whole export prefix")
        files.append(p)
    return Unit(files, str(version) if version else None, dataset, path, period, notes, export_time)


def _version_of(path: Path) -> tuple[str | None, str | None]:
    """(version id, period key) of an AWS manifest, without resolving its files; (None, None) if unreadable."""
    try:
        m = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None, None
    if not isinstance(m, dict):
        return None, None
    v = m.get("assemblyId") if "reportKeys" in m else m.get("executionId") if "dataFiles" in m else None
    bp = m.get("billingPeriod")
    return (str(v) if v else None), (json.dumps(bp, sort_keys=True) if bp else None)


def _layout(unit: Unit) -> None:
    """Unit.current / .older from the AWS layout around its manifest.

    ``<period>/<report>-Manifest.json`` is the current version; ``<period>/<id>/<report>-Manifest.json`` (a
    folder named by its own assembly / execution id) is a per-version copy. The current manifest's own version
    is current, and the per-version folders beside it holding another version are older. A per-version copy
    imported on its own looks one folder up for the current manifest of the same period."""
    mp = unit.manifest
    if mp is None or unit.version_id is None or _version_of(mp)[0] is None:    # AWS manifests only (not Azure)
        return
    if mp.parent.name == unit.version_id:          # a per-version copy: the current manifest is one folder up
        top = mp.parent.parent / mp.name
        if not top.is_file():
            return
        current, period = _version_of(top)
        if current is None or (period is not None and unit.period_key is not None and period != unit.period_key):
            return                                 # unreadable, or another billing period's manifest
        folder = top.parent
    else:
        current, folder = unit.version_id, mp.parent
    older = set()
    try:
        for d in folder.iterdir():
            copy = d / mp.name
            if d.is_dir() and copy.is_file():
                v, _p = _version_of(copy)
                if v is not None and v != current and d.name == v:
                    older.add(v)
    except OSError:
        return
    unit.current, unit.older = current, frozenset(older)


def discover(path: Path) -> list[Unit]:
    """The import units for a file or an export folder."""
    if not path.exists():
        raise UsageError("no such file or folder", where=str(path),
                         hint="pass a billing export: a CSV, CSV.gz, Parquet or JSONL file, or its folder")
    if path.is_file():
        if not is_manifest(path):
            return [Unit([path])]
        unit = read_manifest(path)
        _layout(unit)
        return [unit]
    manifests = sorted(p for p in path.rglob("*") if p.is_file() and is_manifest(p))
    units: list[Unit] = []
    if manifests:
        # One version per export period: the shallowest manifest is the top-level one AWS rewrites on
        # every update; per-assembly copies deeper down describe older (or the same) versions.
        by_period: dict[str, Unit] = {}
        depth: dict[str, int] = {}
        for mp in manifests:
            u = read_manifest(mp, path)
            key = f"{mp.name}|{u.period_key}"
            d = len(mp.relative_to(path).parts)
            if key not in by_period or d < depth[key]:
                by_period[key], depth[key] = u, d
        units = list(by_period.values())
        for u in units:
            _layout(u)
        claimed = {f.resolve() for u in units for f in u.files}
        # Files outside every manifest's scope (a folder of loose exports next to a CUR prefix) still count,
        # but not those inside a folder that has a manifest (older versions).
        managed = {mp.parent.resolve() for mp in manifests} | {f.parent.resolve() for f in claimed}
        for f in sorted(p for p in path.rglob("*") if _is_data(p)):
            r = f.resolve()
            if r in claimed or any(a in managed for a in [r.parent, *r.parents]):
                continue
            units.append(Unit([f]))
        return units
    return [Unit([f]) for f in sorted(p for p in path.rglob("*") if _is_data(p))]
