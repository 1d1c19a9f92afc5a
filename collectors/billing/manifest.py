"""Which files make up the current version of an export, from the cloud's manifests (never by globbing).

- AWS legacy CUR: ``<period>/<report>-Manifest.json`` (top level, rewritten on each update) names the
  current ``assemblyId`` and its ``reportKeys``; older assembly folders stay next to it and must be ignored.
- AWS CUR 2.0 / Data Exports: ``metadata/BILLING_PERIOD=YYYY-MM/*-Manifest.json`` with ``executionId`` and
  ``dataFiles`` (s3:// URIs).
- Azure exports: ``manifest.json`` with ``runInfo.runId``, ``exportConfig.type`` and ``blobs[].blobName``.
A folder without manifests is a set of independent files, each its own version.
"""

from __future__ import annotations

import json
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
    export_time: int | None = None       # when the cloud ran this export (Azure runInfo.submittedTime)


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
    elif "dataFiles" in m:                         # CUR 2.0 / Data Exports
        keys, version = list(m.get("dataFiles") or []), m.get("executionId")
        period = json.dumps(m.get("billingPeriod"), sort_keys=True) if m.get("billingPeriod") else None
        for f in keys:
            if "BILLING_PERIOD=" in f:
                period = f.split("BILLING_PERIOD=", 1)[1].split("/", 1)[0]
                break
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


def discover(path: Path) -> list[Unit]:
    """The import units for a file or an export folder."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_file():
        return [read_manifest(path)] if is_manifest(path) else [Unit([path])]
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
