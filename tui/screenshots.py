"""Write the README/doc screenshots from the deterministic demo with a fixed clock:

    python -m gpuspend.tui.screenshots [OUT_DIR]        # default: screenshots/

SVGs of the dashboard, the billing screen and an idle alert at 120x40 and 80x24 (plus PNGs when the
optional `resvg_py` or `cairosvg` package is importable). The demo (seed 42) is built in a temporary
folder at 2026-11-15 12:00 UTC, the user's config is ignored and the theme is fixed, so two runs give the
same files.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

FIXED_NOW = "2026-11-15T12:00:00+00:00"
SIZES = ((120, 40), (80, 24))
VIEWS = ("dashboard", "billing", "idle-alert")


def _png(svg: Path) -> bool:
    text = svg.read_text(encoding="utf-8")
    try:
        import resvg_py  # type: ignore[import-not-found]

        svg.with_suffix(".png").write_bytes(bytes(resvg_py.svg_to_bytes(svg_string=text.replace(
            "Fira Code", "DejaVu Sans Mono"), monospace_family="DejaVu Sans Mono", font_family="DejaVu Sans Mono")))
        return True
    except ImportError:
        pass
    try:
        import cairosvg  # type: ignore[import-not-found]

        cairosvg.svg2png(bytestring=text.encode(), write_to=str(svg.with_suffix(".png")))
        return True
    except (ImportError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpuspend-shots-") as tmp:
        os.environ["GPUSPEND_NOW"] = FIXED_NOW
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")       # never the user's config
        for var in ("NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM", "GPUSPEND_CONFIG"):
            os.environ.pop(var, None)
        from gpuspend import clock
        from gpuspend.config import load_config
        from gpuspend.demo import build_demo_db

        db = build_demo_db(Path(tmp) / "demo.db", clock.now_ms())
        cfg = load_config(None)
        written = []
        for w, h in SIZES:
            for view in VIEWS:
                written.append(asyncio.run(shoot(db, cfg, view, (w, h), out)))
    pngs = sum(_png(p) for p in written)
    for p in written:
        print(p)
    print(f"{len(written)} SVGs{f', {pngs} PNGs' if pngs else ' (no PNG renderer: pip install resvg-py)'} in {out}")
    return 0


async def shoot(db: Path, cfg, view: str, size: tuple[int, int], out: Path) -> Path:
    import time

    from gpuspend.tui.app import GpuspendApp

    app = GpuspendApp(db, cfg, collect=False, interval=3600)
    app.theme = "textual-dark"

    async def until(cond, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"screenshot {view}: the dashboard did not load")
            await pilot.pause(0.05)
        await pilot.pause()

    async with app.run_test(size=size, notifications=True) as pilot:
        await until(lambda: app.snapshots_applied >= 1)
        if view == "billing":
            await pilot.press("b")
            await until(lambda: "so far" in str(app.screen.query_one("#billing-title").render()))
        elif view == "idle-alert":
            # the held-idle GPU (someone's forgotten notebook) is the story the README tells
            idle = next((a for a in app.alert_lines if a.kind == "idle" and "held-idle" in a.text),
                        next((a for a in app.alert_lines if a.kind == "idle"), None))
            if idle is not None:
                app.announce(idle)          # the toast a user sees when an episode opens
            await pilot.pause(0.3)
        name = f"{view}-{size[0]}x{size[1]}.svg"
        path = out / name
        path.write_text(app.export_screenshot(title=f"gpuspend {view}"), encoding="utf-8")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
