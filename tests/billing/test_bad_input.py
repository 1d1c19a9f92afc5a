"""Bad input through the real CLI: exit 3, `file:line: what`, database byte-for-byte unchanged."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from tests.billing.helpers import FIXTURES, dump

GOOD = FIXTURES / "focus_gpu.csv"


@pytest.fixture
def seeded(cli, db_path: Path) -> str:
    """A database that already holds one import, so 'unchanged' means something."""
    r = cli("--db", str(db_path), "import", str(FIXTURES / "aws_cur2.csv"))
    assert r.returncode == 0, r.stderr
    return dump(db_path)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _bad_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    lines = _lines(GOOD)
    header = lines[0].split(",")
    missing = _write(tmp / "missing.csv", [",".join(h for h in header if h != "BilledCost")] + ["x"])
    bad_date = lines[:4] + [lines[4].replace("2026-11-10T00:00:00Z", "10th of Nov", 1)] + lines[5:]
    bad_num = lines[:3] + [lines[3].replace(",32.77,", ",32.77 USD,", 1)] + lines[4:]
    gz = tmp / "trunc.csv.gz"
    gz.write_bytes(gzip.compress((GOOD.read_text() * 200).encode())[:3000])
    latin = tmp / "latin1.csv"
    latin.write_bytes(GOOD.read_bytes().replace(b"Research credits", "Forschungsgutschrift für KI".encode("latin-1")))
    (tmp / "empty.csv").write_text("")
    return {
        "missing column": (missing, "missing.csv:1: not a focus export: missing required column(s) BilledCost"),
        "bad date": (_write(tmp / "date.csv", bad_date), "date.csv:5: ChargePeriodStart: cannot read '10th of Nov'"),
        "bad number": (_write(tmp / "num.csv", bad_num), "num.csv:4: BilledCost: cannot read '32.77 USD' as a number"),
        "truncated gzip": (gz, "trunc.csv.gz:"),
        "wrong encoding": (latin, "latin1.csv:7: not UTF-8 text"),
        "empty": (tmp / "empty.csv", "empty.csv:1: empty file"),
        "header only": (_write(tmp / "header.csv", lines[:1]), "header.csv:2: no data rows (header only)"),
    }


@pytest.mark.parametrize("case", ["missing column", "bad date", "bad number", "truncated gzip", "wrong encoding",
                                  "empty", "header only"])
def test_bad_file_exit_3_and_nothing_written(case: str, cli, db_path: Path, seeded: str, tmp_path: Path) -> None:
    path, message = _bad_cases(tmp_path)[case]
    args = ["--db", str(db_path), "import", str(GOOD), str(path)]       # a good file first: rolled back too
    if case == "missing column":
        args += ["--format", "focus"]
    r = cli(*args)
    assert r.returncode == 3, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert message in err and err.startswith("gpuspend: ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert dump(db_path) == seeded


def test_truncated_gzip_names_the_problem(cli, db_path: Path, tmp_path: Path) -> None:
    path, _ = _bad_cases(tmp_path)["truncated gzip"]
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 3 and "truncated or corrupt gzip" in r.stderr


def test_unknown_format_names_the_closest_and_what_it_missed(cli, db_path: Path, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    header = lines[0].replace("BilledCost", "Billed").replace("ChargeCategory", "Category")
    path = _write(tmp_path / "almost.csv", [header, *lines[1:]])
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 3
    assert "closest is focus but it lacks BilledCost, ChargeCategory" in r.stderr


def test_skip_bad_rows_imports_the_rest(cli, db_path: Path, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    bad = [lines[0], *lines[1:3], lines[3].replace(",32.77,", ",oops,", 1), lines[4],
           lines[5].replace("2026-10-20T00:00:00Z", "not a date", 1), *lines[6:]]
    path = _write(tmp_path / "some-bad.csv", bad)
    r = cli("--db", str(db_path), "import", "--skip-bad-rows", "--json", str(path))
    assert r.returncode == 0, r.stderr
    [f] = json.loads(r.stdout)["files"]
    assert f["skipped_rows"] == 2 and f["rows"] == len(lines) - 1 - 2
    text = cli("--db", str(tmp_path / "other.db"), "import", "--skip-bad-rows", str(path)).stdout
    assert "skipped 2 bad rows (lines 4, 6)" in text


def test_json_output_shape(cli, db_path: Path) -> None:
    r = cli("--db", str(db_path), "import", "--json", str(GOOD), str(FIXTURES / "gcp_export.jsonl"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["files", "kept", "superseded", "incomplete", "changed"]
    assert out["kept"] == [f["path"] for f in out["files"]] and out["superseded"] == out["incomplete"] == []
    assert out["changed"]
    for f in out["files"]:
        assert list(f) == ["path", "format", "status", "rows", "gpu_rows", "skipped_rows", "bad_lines",
                           "superseded_by", "supersedes", "kept_instead", "why", "notes", "periods"]
        for p in f["periods"]:
            assert list(p) == ["start", "currency", "billed_cost", "effective_cost", "rows"]
            assert len(p["start"]) == 10 and p["start"][4] == "-"
            assert round(p["billed_cost"], 6) == p["billed_cost"]
    assert [f["format"] for f in out["files"]] == ["focus", "gcp"]


def test_header_text_never_reaches_sql(cli, db_path: Path, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    evil = lines[0] + ',"x""); DROP TABLE charges; --",[Tags]'
    path = _write(tmp_path / "evil.csv", [evil] + [ln + ",1,2" for ln in lines[1:]])
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 0, r.stderr
    import sqlite3

    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == len(lines) - 1
    cols = [r[1] for r in conn.execute("PRAGMA table_info(charges)")]
    assert not any("DROP" in c or "x" == c for c in cols)


def test_escape_sequences_in_values_are_not_printed(cli, db_path: Path, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    path = tmp_path / "esc.csv"
    path.write_text("\n".join([lines[0], lines[1].replace(",98.32,", ",\x1b[31m98,", 1), *lines[2:]]) + "\n")
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 3 and "\x1b" not in r.stderr and "cannot read '98' as" in r.stderr


def test_format_override(cli, db_path: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "aws_cur2.csv", tmp_path / "cur.csv")
    assert cli("--db", str(db_path), "import", "--format", "aws-cur2", str(tmp_path / "cur.csv")).returncode == 0
    r = cli("--db", str(db_path), "import", "--format", "gcp", str(tmp_path / "cur.csv"))
    assert r.returncode == 3 and "not a gcp export: missing required column(s) cost" in r.stderr


def test_jsonl_bad_row_names_its_real_line(cli, db_path: Path, tmp_path: Path) -> None:
    lines = (FIXTURES / "gcp_export.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["usage_start_time"] = "someday"
    path = tmp_path / "gcp.jsonl"
    path.write_text("\n".join([lines[0], "", lines[1], json.dumps(bad), *lines[3:]]) + "\n")   # a blank line
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 3 and "gcp.jsonl:4: usage_start_time: cannot read 'someday'" in r.stderr
