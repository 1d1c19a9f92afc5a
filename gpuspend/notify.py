"""Deliver queued alert notifications (the `notifications` outbox) to Slack, ntfy and generic JSON webhooks.

`gpuspend.alerts.evaluate` only enqueues rows; this module sends them. Several senders may run at once (the
collector daemon, the TUI's in-app collector, `gpuspend --report --notify` from cron): each claims its rows
in one BEGIN IMMEDIATE transaction (claimed_by + next_attempt pushed forward, so the claim is a lease that
expires if the sender dies), which is why a row is sent once. Failures stay in the outbox with a later
next_attempt; 4xx answers are final (status 'failed') because retrying a rejected request cannot help.

Webhook URLs embed their secret and tokens are secrets: neither ever appears in an error, log or return value.

Delivery is at least once: a message is marked sent only after its target answered 2xx, so a timeout or a
sender killed mid-POST means it is sent again. Webhook and ntfy requests carry an idempotency key (the same
for every attempt at one message) so the receiver can keep one copy; Slack has none, so Slack may rarely show
a message twice. Only `gpuspend --report --notify` and the collector daemon (and the TUI's in-app collector)
deliver: a plain `--report` never does.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gpuspend.alert_kinds import KINDS as ALERT_KINDS
from gpuspend.alert_kinds import expand
from gpuspend.config import TARGET_KINDS
from gpuspend.fmt import clean, rounded
from gpuspend.retry_after import parse_retry_after
from gpuspend.store import transaction

if TYPE_CHECKING:     # httpx loads when something is sent: the collector on a box without targets skips it
    import httpx

    from gpuspend.config import Config

KINDS = TARGET_KINDS            # one list: the config refuses any other kind at file:line:column
CLAIM_MS = 10 * 60_000          # a claim outlives any in-process retry loop
MAX_INLINE_WAIT_S = 30.0        # a longer Retry-After is honoured through next_attempt, not by sleeping
GIVE_UP_AFTER_MS = 86_400_000   # a notification nobody could deliver for a day is dropped as 'failed'
NTFY_DEFAULT = "https://ntfy.sh"
BATCH = 200


@dataclass(frozen=True)
class Target:
    name: str
    kind: str                   # slack | ntfy | webhook
    url: str | None
    topic: str | None
    token: str | None
    kinds: tuple[str, ...]      # empty: every alert kind
    min_dollars: float
    timeout: float
    retries: int

    def accepts(self, kind: str, dollars: float | None) -> bool:
        """The target's filter. Alerts without a dollar value (collector stopped, stale data) always pass."""
        if self.kinds and kind not in self.kinds:
            return False
        return dollars is None or dollars >= (self.min_dollars or 0.0)

    @property
    def endpoint(self) -> str | None:
        if self.kind == "ntfy":
            return (self.url or NTFY_DEFAULT).rstrip("/")
        return self.url

    def secrets(self) -> list[str]:
        """The URL, its path and query (a Slack hook's secret is its path), and the token; longest first."""
        out = [self.url or "", self.token or ""]
        if self.url:
            parts = urlsplit(self.url)
            out += [parts.path if len(parts.path) > 1 else "", parts.query]
        return sorted({s for s in out if s}, key=len, reverse=True)


def configured_targets(cfg: Config) -> list[Target]:
    """Targets from cfg.notify.targets; unnamed ones are called '<kind>-<n>' (stable while the list is)."""
    out: list[Target] = []
    notify = getattr(cfg, "notify", None) or {}
    for i, t in enumerate(notify.get("targets") or []):
        kind = (t.get("kind") or "webhook").lower()
        out.append(Target(
            name=t.get("name") or f"{kind}-{i + 1}",
            kind=kind,
            url=t.get("url"),
            topic=t.get("topic"),
            token=t.get("token"),
            kinds=tuple(sorted(expand(t.get("kinds") or ()))),
            min_dollars=float(t.get("min_dollars") or 0.0),
            timeout=float(t.get("timeout") or 10.0),
            retries=int(t.get("retries") if t.get("retries") is not None else 3),
        ))
    return out


def target_problems(targets: Iterable[Target]) -> list[str]:
    """Configuration mistakes, one line each, never showing a URL or token (used by doctor and senders)."""
    problems = []
    for t in targets:
        if t.kind not in KINDS:
            problems.append(f"notify target {t.name}: unknown kind '{t.kind}' (use slack, ntfy or webhook)")
        elif bad := sorted(set(t.kinds) - set(ALERT_KINDS)):
            problems.append(f"notify target {t.name}: unknown alert kind '{bad[0]}' in kinds "
                            f"(use {', '.join(ALERT_KINDS)})")
        elif t.kind == "ntfy" and not t.topic:
            problems.append(f"notify target {t.name}: ntfy needs a topic")
        elif t.kind != "ntfy" and not t.url:
            problems.append(f"notify target {t.name}: no url (is its environment variable set?)")
        elif t.endpoint and not t.endpoint.startswith(("http://", "https://")):
            problems.append(f"notify target {t.name}: url must start with http:// or https://")
    return problems


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return text


# -- rendering ---------------------------------------------------------------------------------------------

_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _slack_text(text: str) -> str:
    """Outside text in Slack mrkdwn: escape the three control characters Slack defines, and neutralise
    the formatting characters so a process name cannot bold, strike or link anything."""
    text = re.sub(r"[&<>]", lambda m: _SLACK_ESCAPES[m.group(0)], text)
    return re.sub(r"([*_~`])", "\u200b\\1\u200b", text)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "0001-01-01T00:00:00Z"      # Alertmanager's "not ended"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_word(event: str) -> str:
    if event == "resolved":
        return "Resolved"
    if event.startswith("repeat:"):
        return "Still open"
    return "Alert"


def render_slack(p: dict) -> dict:
    resolved = p["event"] == "resolved"
    icon = ":white_check_mark:" if resolved else (":hourglass:" if p["event"].startswith("repeat:") else ":warning:")
    head = f"{icon} *{_event_word(p['event'])}: {_slack_text(p['title'])}*"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    fields = [{"type": "mrkdwn", "text": f"*{_slack_text(k)}*\n{_slack_text(v)}"} for k, v in p.get("fields", [])]
    for i in range(0, len(fields), 10):      # Slack allows at most 10 fields per section
        blocks.append({"type": "section", "fields": fields[i:i + 10]})
    if p.get("text"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_text(p["text"])}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_text(
        f"gpuspend · {p['kind']} · started {_iso(p['started_ms'])}"
        + (f" · ended {_iso(p['ended_ms'])}" if p.get("ended_ms") else ""))}]})
    fallback = f"{_event_word(p['event'])}: {p['title']}"
    return {"text": _slack_text(fallback), "blocks": blocks}


def render_ntfy(p: dict, topic: str) -> dict:
    event = p["event"]
    if event == "resolved":
        priority, tags = 2, ["white_check_mark"]
    else:
        priority = 3 if event.startswith("repeat:") else 4
        tags = ["warning", "moneybag"] if p.get("dollars") else ["warning"]
    lines = [f"{k}: {v}" for k, v in p.get("fields", [])]
    if p.get("text"):
        lines.append(p["text"])
    return {"topic": topic, "title": f"{_event_word(event)}: {p['title']}", "message": "\n".join(lines) or p["title"],
            "priority": priority, "tags": tags}


def fingerprint(p: dict) -> str:
    return hashlib.sha256(f"{p['kind']}\0{p['subject']}\0{p['started_ms']}".encode()).hexdigest()[:16]


def render_webhook(p: dict, receiver: str) -> dict:
    """Alertmanager webhook_config shape (version 4), one alert per message, plus gpuspend's `event`."""
    status = "resolved" if p["event"] == "resolved" else "firing"
    labels = {"alertname": p.get("alertname", p["kind"]), "kind": p["kind"], "subject": p["subject"],
              **{k: str(v) for k, v in (p.get("labels") or {}).items()}}
    annotations = {"summary": p["title"], "description": p.get("text") or ""}
    for k, v in p.get("fields", []):
        annotations[re.sub(r"\W+", "_", k.lower()).strip("_")] = v
    if p.get("dollars") is not None:
        annotations["dollars"] = str(rounded(p["dollars"]))
        annotations["currency"] = p.get("currency") or ""
    alert = {"status": status, "labels": labels, "annotations": annotations, "startsAt": _iso(p["started_ms"]),
             "endsAt": _iso(p.get("ended_ms")), "generatorURL": "", "fingerprint": fingerprint(p)}
    return {"version": "4", "groupKey": f"gpuspend:{p['kind']}:{p['subject']}", "status": status,
            "receiver": receiver, "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
            "commonAnnotations": annotations, "externalURL": "", "truncatedAlerts": 0, "event": p["event"],
            "alerts": [alert]}


def idempotency_key(target: Target, p: dict) -> str:
    """The same for every attempt at one notification (one alert, one event, one target): retries after a
    timeout and a resend after a sender was killed mid-POST carry the same key, so a receiver that honours it
    keeps one copy. Stable across processes (derived, not random)."""
    raw = f"{target.name}\0{p['kind']}\0{p['subject']}\0{p.get('started_ms')}\0{p.get('alert_id')}\0{p['event']}"
    return "gpuspend-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def build_request(target: Target, payload: dict) -> tuple[str, dict, dict]:
    """(url, headers, json body) for one notification to one target.

    Delivery is at least once. A generic webhook gets an `Idempotency-Key` header and `idempotency_key` in the
    body (ntfy gets the header), so it can drop repeats; a Slack incoming webhook has no such key, so after a
    timeout or a crash mid-POST a Slack channel can see a message twice (never zero times)."""
    key = idempotency_key(target, payload)
    headers = {"Content-Type": "application/json", "User-Agent": "gpuspend", "Idempotency-Key": key}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    if target.kind == "slack":
        body = render_slack(payload)
        del headers["Idempotency-Key"]      # Slack rejects nothing for it, but honours nothing either
    elif target.kind == "ntfy":
        body = render_ntfy(payload, target.topic or "")
    else:
        body = {**render_webhook(payload, target.name), "idempotency_key": key}
    return target.endpoint or "", headers, body


# -- sending -----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    ok: bool
    error: str | None = None
    final: bool = False                 # 4xx: do not retry
    retry_after_s: float | None = None  # server asked us to wait longer than we sleep in-process


def _retry_after(resp: httpx.Response) -> float | None:
    return parse_retry_after(resp.headers)


def _body_hint(resp: httpx.Response, secrets: list[str]) -> str:
    text = clean(resp.text[:120]).strip()
    return f": {redact(text, secrets)}" if text else ""


def send_one(client: httpx.Client, target: Target, payload: dict, *, backoff_s: float = 0.5,
             sleep: Any = time.sleep) -> Outcome:
    """POST with retries: 5xx, 429 (honouring Retry-After) and connection errors/timeouts are retried with
    exponential backoff; 4xx is final. Errors name the target and the HTTP status, never the URL."""
    import httpx

    url, headers, body = build_request(target, payload)
    secrets = target.secrets()
    error = "not attempted"
    for attempt in range(target.retries + 1):
        wait = backoff_s * (2 ** attempt)
        try:
            resp = client.post(url, headers=headers, json=body, timeout=target.timeout)
        except httpx.TimeoutException:
            # The request may well have arrived (a slow endpoint once got 4 copies): no retry in this run;
            # the outbox tries again after its backoff, with the same idempotency key.
            return Outcome(False, f"{target.name}: no answer within {target.timeout:g}s")
        except httpx.TransportError as exc:
            error = f"{target.name}: connection failed ({type(exc).__name__})"
        else:
            if resp.status_code < 300:
                return Outcome(True)
            error = f"{target.name}: HTTP {resp.status_code}{_body_hint(resp, secrets)}"
            if resp.status_code == 429:
                after = _retry_after(resp)
                if after is not None:
                    if after > MAX_INLINE_WAIT_S:
                        return Outcome(False, error, retry_after_s=after)
                    wait = after
            elif 400 <= resp.status_code < 500:
                return Outcome(False, error, final=True)
            elif resp.status_code < 500:
                return Outcome(False, error, final=True)   # 3xx: a webhook never redirects meaningfully
        if attempt < target.retries:
            sleep(wait)
    return Outcome(False, error)


def _outbox_backoff_ms(attempts: int) -> int:
    """Next try for a failed row: 1 min, 2, 4, ... capped at 1 h."""
    return min(3_600_000, 60_000 * (2 ** max(0, attempts - 1)))


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0         # given up (4xx, or undeliverable for a day)
    retrying: int = 0       # left in the outbox for a later try
    errors: list[str] = field(default_factory=list)


def deliver_pending(conn: sqlite3.Connection, cfg: Config, now_ms: int, client: httpx.Client | None = None, *,
                    backoff_s: float = 0.5) -> DeliveryResult:
    """Send every due notification for the configured targets. Safe to call from several processes."""
    result = DeliveryResult()
    targets = {t.name: t for t in configured_targets(cfg)}
    broken = target_problems(targets.values())
    usable = {n: t for n, t in targets.items() if not any(p.startswith(f"notify target {n}:") for p in broken)}
    result.errors.extend(broken)
    if not usable:
        return result
    token = uuid.uuid4().hex
    names = list(usable)
    marks = ",".join("?" * len(names))
    with transaction(conn):
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM notifications WHERE status = 'pending' AND next_attempt <= ? AND target IN ({marks}) "
            "ORDER BY id LIMIT ?", (now_ms, *names, BATCH))]
        if ids:
            conn.executemany("UPDATE notifications SET claimed_by = ?, next_attempt = ? WHERE id = ?",
                             [(token, now_ms + CLAIM_MS, i) for i in ids])
    if not ids:
        return result
    rows = conn.execute(
        f"SELECT id, alert_id, target, event, payload, attempts, created FROM notifications "
        f"WHERE claimed_by = ? AND id IN ({','.join('?' * len(ids))}) ORDER BY id", (token, *ids)).fetchall()
    own = client is None
    if client is None:
        import httpx

        client = httpx.Client(follow_redirects=False)
    http = client
    blocked: dict[tuple[int, str], int] = {}   # (alert, target) whose earlier message failed: keep order
    down: dict[str, int] = {}                  # target that failed after its retries: skip it this run
    try:
        for nid, alert_id, tname, event, payload_text, attempts, created in rows:
            target = usable[tname]
            wait_until = blocked.get((alert_id, tname)) or down.get(tname)
            if wait_until is not None:
                _release(conn, nid, token, wait_until)
                result.retrying += 1
                continue
            outcome = send_one(http, target, json.loads(payload_text), backoff_s=backoff_s)
            if outcome.ok:
                with transaction(conn):
                    conn.execute("UPDATE notifications SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                                 "claimed_by = NULL, last_error = NULL WHERE id = ? AND claimed_by = ?",
                                 (now_ms, nid, token))
                result.sent += 1
                continue
            error = redact(outcome.error or "failed", target.secrets())
            result.errors.append(f"{event} notification for alert {alert_id}: {error}")
            give_up = outcome.final or now_ms - created > GIVE_UP_AFTER_MS
            if outcome.retry_after_s is not None:
                next_at = now_ms + int(outcome.retry_after_s * 1000)
            else:
                next_at = now_ms + _outbox_backoff_ms(attempts + 1)
            with transaction(conn):
                conn.execute("UPDATE notifications SET status = ?, attempts = attempts + 1, next_attempt = ?, "
                             "last_error = ?, claimed_by = NULL WHERE id = ? AND claimed_by = ?",
                             ("failed" if give_up else "pending", next_at, error, nid, token))
            if give_up:
                result.failed += 1
            else:
                result.retrying += 1
                blocked[(alert_id, tname)] = next_at
                down[tname] = next_at      # unreachable or overloaded: one row's retries were enough
    finally:
        if own:
            http.close()
    return result


def _release(conn: sqlite3.Connection, nid: int, token: str, next_at: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE notifications SET claimed_by = NULL, next_attempt = ? WHERE id = ? AND claimed_by = ?",
                     (next_at, nid, token))


def outbox(conn: sqlite3.Connection) -> dict[str, int]:
    """Counts by status, for doctor/report ("3 notifications waiting to be retried")."""
    return {s: n for s, n in conn.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status")}
