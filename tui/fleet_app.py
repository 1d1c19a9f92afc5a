"""`gpuspend --fleet URL`: a small Textual app over the Prometheus fleet view.

Polling runs in a thread worker (httpx is blocking) that never touches widgets: it posts the result, and the
next poll is scheduled only after the previous one finished, so a slow Prometheus never stacks requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App
from textual.message import Message
from textual.timer import Timer

from gpuspend.fleet import FleetError, FleetView, check_url, fleet_view
from gpuspend.tui.driver import QuietInput
from gpuspend.tui.screens.fleet import FleetScreen

if TYPE_CHECKING:
    from gpuspend.config import Config
    from gpuspend.options import FleetOptions

DEFAULT_INTERVAL_S = 5.0


class FleetUpdated(Message):
    def __init__(self, view: FleetView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:     # latest view wins
        return isinstance(message, FleetUpdated)


class FleetFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class FleetApp(QuietInput, App):
    TITLE = "gpuspend fleet"

    def __init__(self, url: str, cfg: Config | None = None, *, interval_s: float = DEFAULT_INTERVAL_S,
                 timeout_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = check_url(url)
        self.cfg = cfg
        self.interval_s = float(interval_s)
        self.timeout_s = timeout_s
        self.polls = 0
        self._next: Timer | None = None

    def on_mount(self) -> None:
        self.push_screen(FleetScreen(self.url))
        self.poll()

    @work(thread=True, exclusive=True, group="fleet")
    def poll(self) -> None:
        try:
            view = fleet_view(self.url, self.cfg, timeout_s=self.timeout_s)
        except FleetError as exc:
            self.post_message(FleetFailed(exc.message))
        except Exception as exc:       # keep the dashboard alive; say what went wrong
            self.post_message(FleetFailed(f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(FleetUpdated(view))

    def _screen(self) -> FleetScreen | None:
        screen = self.screen
        return screen if isinstance(screen, FleetScreen) else None

    @on(FleetUpdated)
    def _updated(self, message: FleetUpdated) -> None:
        self.polls += 1
        if (screen := self._screen()) is not None:
            screen.show(message.view)
        self._schedule()

    @on(FleetFailed)
    def _failed(self, message: FleetFailed) -> None:
        self.polls += 1
        if (screen := self._screen()) is not None:
            screen.show_error(message.error)
        self._schedule()

    def _schedule(self) -> None:
        """One pending poll at most, even when a manual refresh overlapped a scheduled one."""
        if self._next is not None:
            self._next.stop()
        self._next = self.set_timer(self.interval_s, self.poll)

    def action_refresh_fleet(self) -> None:
        if self._next is not None:
            self._next.stop()
            self._next = None
        self.poll()


def run_fleet_app(opts: FleetOptions) -> int:
    """Entry point for `gpuspend --fleet URL` (opts = gpuspend.cli.Options)."""
    url = check_url(opts.fleet_url)
    cfg = opts.load_config()
    interval = opts.interval or DEFAULT_INTERVAL_S
    app = FleetApp(url, cfg, interval_s=float(interval))
    app.run()
    return 0
