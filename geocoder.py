"""A Nominatim-compatible geocoder as LocationIQ serves it: forward search with its rate limits, retries and budget.

LocationIQ in production (`/v1/search`, free-text `q`, `countrycodes=ke`); a
self-hosted Nominatim works by changing GEOCODER_URL. The API key never
appears in a message.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import psycopg

import clock
from errors import FleetError
from settings import GeocoderSettings

# Tries per query; each one is a request and counts against the budget.
ATTEMPTS = 4
# LocationIQ's 429s carry no Retry-After: a per-second window clears at once,
# a per-minute window only after a full minute.
SECOND_WINDOW_WAIT_S = 2.0
MINUTE_WINDOW_WAIT_S = 61.0
SERVER_ERROR_WAITS_S = (2.0, 10.0, 30.0)


class KeyRejected(FleetError):
    """The provider refused the API key (401/403): nothing will work until it is fixed."""


class BudgetSpent(Exception):
    """Today's request budget is used up: stop asking, which is normal operation."""


class LookupFailed(Exception):
    """A query failed even after its retries (timeouts, 5xx): cache it as an error, go on."""


@dataclass(frozen=True)
class Found:
    lat: float
    lon: float
    osm_type: str | None
    osm_id: int | None
    display_name: str | None


BUDGET_USED = """
SELECT requests, exhausted FROM tickets.geocode_budget
WHERE provider_day = (now() AT TIME ZONE 'UTC')::date AND provider = %s
"""

# Each request is taken in its own committed statement, so parallel runs share the budget.
TAKE_REQUEST = """
INSERT INTO tickets.geocode_budget AS b (provider_day, provider, requests)
VALUES ((now() AT TIME ZONE 'UTC')::date, %(provider)s, 1)
ON CONFLICT (provider_day, provider) DO UPDATE SET requests = b.requests + 1
    WHERE b.requests < %(limit)s AND NOT b.exhausted
RETURNING requests
"""

MARK_EXHAUSTED = """
INSERT INTO tickets.geocode_budget (provider_day, provider, exhausted)
VALUES ((now() AT TIME ZONE 'UTC')::date, %s, true)
ON CONFLICT (provider_day, provider) DO UPDATE SET exhausted = true
"""


class Budget:
    """The shared daily request budget, counted in the database per provider day (UTC)."""

    def __init__(self, conn: psycopg.Connection, provider: str, limit: int) -> None:
        self.conn = conn
        self.provider = provider
        self.limit = limit

    def used(self) -> int:
        row = self.conn.execute(BUDGET_USED, (self.provider,)).fetchone()
        if not row:
            return 0
        return self.limit if row[1] else row[0]

    def left(self) -> int:
        return max(self.limit - self.used(), 0)

    def take(self) -> bool:
        """Take one request from today's budget; False when there is none left."""
        row = self.conn.execute(TAKE_REQUEST, {"provider": self.provider, "limit": self.limit}).fetchone()
        return row is not None and row[0] <= self.limit

    def mark_exhausted(self) -> None:
        self.conn.execute(MARK_EXHAUSTED, (self.provider,))


class Geocoder:
    """Forward search with the provider's rules: rate limit, retries, budget, and no key in any message."""

    def __init__(self, config: GeocoderSettings, budget: Budget, client: httpx.Client) -> None:
        self.config = config
        self.budget = budget
        self.client = client
        self.requests = 0
        self._next_slot = 0.0

    def _describe(self, query: str) -> str:
        return f"{self.config.provider} for {query!r}"

    def _send(self, query: str) -> httpx.Response:
        if not self.budget.take():
            raise BudgetSpent
        wait = self._next_slot - clock.monotonic()
        if wait > 0:
            clock.sleep(wait)
        self._next_slot = clock.monotonic() + 1 / self.config.rps
        self.requests += 1
        return self.client.get(self.config.url, params={
            "key": self.config.api_key, "q": query, "format": "json", "countrycodes": "ke", "limit": 1,
        })

    def search(self, query: str) -> Found | None:
        """The best match, or None when the provider has nothing for `query`."""
        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                response = self._send(query)
            except httpx.TimeoutException:
                problem = f"no answer within {self.config.timeout_s:g} s"
                clock.sleep(_backoff(attempt))
                continue
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
                clock.sleep(_backoff(attempt))
                continue
            status = response.status_code
            if status == 200:
                return _first_match(response)
            if status == 404:
                return None  # LocationIQ's "Unable to geocode"
            if status in (401, 403):
                raise KeyRejected(f"{self.config.provider} rejected the API key (HTTP {status}): "
                                  "check GEOCODER_API_KEY; nothing more will be asked")
            if status == 429:
                if "day" in _error_text(response).lower():
                    self.budget.mark_exhausted()
                    raise BudgetSpent
                minute = "minute" in _error_text(response).lower()
                problem = f"rate limited ({_error_text(response) or 'HTTP 429'})"
                clock.sleep(MINUTE_WINDOW_WAIT_S if minute else SECOND_WINDOW_WAIT_S)
                continue
            if status >= 500:
                problem = f"server error HTTP {status}"
                clock.sleep(_backoff(attempt))
                continue
            raise LookupFailed(f"{self._describe(query)}: HTTP {status} {_error_text(response)}".strip())
        raise LookupFailed(f"{self._describe(query)}: {problem} after {ATTEMPTS} attempts")


def _backoff(attempt: int) -> float:
    return SERVER_ERROR_WAITS_S[min(attempt, len(SERVER_ERROR_WAITS_S) - 1)]


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _first_match(response: httpx.Response) -> Found | None:
    try:
        matches = response.json()
        if not matches:
            return None  # Nominatim's "nothing found"
        best = matches[0]
        osm_id = best.get("osm_id")
        return Found(float(best["lat"]), float(best["lon"]), best.get("osm_type"),
                     int(osm_id) if osm_id not in (None, "") else None, best.get("display_name"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise LookupFailed("the geocoder answered 200 with a body that is not a search result") from None
