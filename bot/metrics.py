"""Prometheus metrics (prometheus-client), served at /metrics.

Metrics live in one registry per process, as prometheus-client intends; label values are
bounded (update types, outcomes, city paths without ids) so the series stay few."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

UPDATES = Counter("bot_updates_total", "Updates handled, by type", ["type"])
DUPLICATES = Counter("bot_duplicate_updates_total", "Updates dropped as already handled")
THROTTLED = Counter("bot_throttled_total", "Events dropped by flood protection")
HANDLER_SECONDS = Histogram("bot_handler_seconds", "Time to handle one update")
ERRORS = Counter("bot_errors_total", "Updates whose handling raised an unexpected error")
CITY_SECONDS = Histogram("city_request_seconds", "City platform calls", ["method", "path"])
CITY_ERRORS = Counter("city_errors_total", "City platform failures", ["path", "failure"])
NOTIFICATIONS = Counter("notifications_total", "Outbox deliveries by outcome", ["outcome"])
AUTOPAY_RUNS = Counter("autopay_runs_total", "Autopay runs by outcome", ["outcome"])
PAYMENTS = Counter("payments_total", "Payments by outcome", ["outcome"])
RETRIED = Counter(
    "bot_updates_retried_total",
    "Updates answered non-2xx so that Telegram delivers them again",
    ["reason"],  # busy: another owner's live lease; transient: a failure that passes
)
LEASES_LOST = Counter(
    "bot_leases_lost_total",
    "Leases (an update's marker, a chat's lock) found taken over while their holder still ran:"
    " the handler may run twice (keys keep effects single)",
    ["what"],
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition() -> bytes:
    return generate_latest()


def city_path(path: str) -> str:
    """'/api/v1/payments/9f…' → '/api/v1/payments/{id}': ids must not become label values."""
    keep = {"v1", "v2", "open311"}
    parts = [
        "{id}" if any(ch.isdigit() for ch in part) and part not in keep else part
        for part in path.split("/")
    ]
    return "/".join(parts)


def observe_city(method: str, path: str, status: int, seconds: float, failure: str | None) -> None:
    """The city client's observer: latency and failures by path; payments by outcome."""
    template = city_path(path)
    CITY_SECONDS.labels(method=method, path=template).observe(seconds)
    if failure is not None:
        CITY_ERRORS.labels(path=template, failure=failure).inc()
    if method == "POST" and template == "/api/v1/payments":
        PAYMENTS.labels(outcome=str(status)).inc()
