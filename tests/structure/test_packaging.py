"""One import namespace: the wheel installs exactly one top-level package, `gpuspend`.

PyPI has distributions that install top-level `tui` and `collectors`; had gpuspend installed those names too,
installing one of them would overwrite gpuspend's files, and `python -m gpuspend` would import a stranger's
`collectors/` from any folder that has one.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def _packages_in_tree() -> set[str]:
    """Every package of the source tree, named as it is installed (tui/ -> gpuspend.tui)."""
    out = set()
    for top, name in (("gpuspend", "gpuspend"), ("tui", "gpuspend.tui"), ("collectors", "gpuspend.collectors")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            out.add(".".join((name, *rel)))
    return out


def test_wheel_has_one_top_level_package_and_every_module(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("gpuspend-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"gpuspend"}
    in_wheel = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert _packages_in_tree() <= in_wheel, "a package of the tree is missing from pyproject's package list"
    # Data files travel too (loaded through importlib.resources).
    for data in ("gpuspend/data/prices.yaml", "gpuspend/data/gpu_instances.yaml",
                 "gpuspend/data/report.schema.json", "gpuspend/tui/app.tcss"):
        assert data in names


def test_runs_from_a_folder_with_its_own_tui_and_collectors(tmp_path: Path) -> None:
    for name in ("tui", "collectors"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('a stranger package')\n")
    res = subprocess.run([sys.executable, "-m", "gpuspend", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "gpuspend" in res.stdout
    res = subprocess.run([sys.executable, "-c", "import gpuspend.collectors.nvml, gpuspend.tui.widgets.fmt"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_data_files_load_through_package_resources() -> None:
    from gpuspend.collectors.billing import gpu_catalog

    assert gpu_catalog.lookup("p5.48xlarge") is not None
