"""The real program on a real pseudo-terminal: it draws, and it ends when the terminal goes away."""

from __future__ import annotations

from tests.tui.terminal import dashboard_on_pty, read_until


def test_dropped_terminal_without_sighup_ends_the_process(demo_db):
    """An SSH drop where SIGHUP never arrives (no controlling terminal here, like nohup'd wrappers):
    the watchdog notices the dead pty and exits instead of spinning."""
    with dashboard_on_pty(demo_db, 40, 120) as term:
        screen = read_until(term.fd, b"busy", 30)       # a GPU row: the first snapshot is on screen
        assert b"wasted" in screen and b"Traceback" not in screen
        term.hang_up()
        term.proc.wait(timeout=15)           # the watchdog checks every 2 s
        assert term.proc.returncode != 0


def test_dashboard_refuses_without_a_terminal(cli, demo_db):
    r = cli("--db", str(demo_db))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("gpuspend:") and "--report" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_interval_is_one_clear_line(cli, demo_db):
    r = cli("--db", str(demo_db), "--interval", "0")
    assert r.returncode == 2
    assert r.stderr.strip() == ("gpuspend: Invalid value for '-i' / '--interval': expected a number of seconds from 0.1 "
                                "to 3600, got 0 (see 'gpuspend --help')")


def test_color_system_option_reaches_textual(monkeypatch, make_app, demo_db):
    import textual.constants

    from gpuspend.tui.app import _color_system

    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", textual.constants.COLOR_SYSTEM)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "auto")
    _color_system("256")
    assert make_app(demo_db).console.color_system == "256"
    _color_system("standard")
    assert make_app(demo_db).console.color_system == "standard"
