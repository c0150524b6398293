"""A Nominatim-compatible geocoder as LocationIQ serves it: forward search with its rate limits, retries and budget.

LocationIQ in production (`/v1/search`, free-text `q`, `countrycodes=ke`); a
self-hosted Nominatim works by changing GEOCODER_URL. The API key never
appears in a message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import httpx
import psycopg

from fleettickets import clock
from fleettickets.errors import FleetError
from fleettickets.settings import GeocoderSettings

# Tries per query; each one is a request and counts against the budget.
ATTEMPTS = 4
# LocationIQ's 429s carry no Retry-After: a per-second window clears at once,
# a per-minute window only after a full minute.
SECOND_WINDOW_WAIT_S = 2.0
MINUTE_WINDOW_WAIT_S = 61.0
SERVER_ERROR_WAITS_S = (2.0, 10.0, 30.0)
# A search answer is a few kB; anything far bigger is not one, and is not read.
MAX_ANSWER_BYTES = 1024 * 1024


class KeyRejected(FleetError):
    """The provider refused the API key (401/403): nothing will work until it is fixed."""


class BudgetSpent(Exception):
    """Today's request budget is used up: stop asking, which is normal operation."""


class LookupFailed(Exception):
    """A query failed (after its retries, or with an answer that is not a result): cache it as an error, go on."""


class ProviderDown(FleetError):
    """Too many transport failures or 5xx answers in a row: the provider is down, stop asking."""


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

GIVE_BACK = """
UPDATE tickets.geocode_budget SET requests = requests - 1
WHERE provider_day = (now() AT TIME ZONE 'UTC')::date AND provider = %(provider)s AND requests > 0
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

    def give_back(self) -> None:
        """Return a request that was taken but never sent (the connection failed)."""
        self.conn.execute(GIVE_BACK, {"provider": self.provider})

    def mark_exhausted(self) -> None:
        self.conn.execute(MARK_EXHAUSTED, (self.provider,))


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Geocoder:
    """Forward search with the provider's rules: rate limit, retries, budget, and no key in any message."""

    def __init__(self, config: GeocoderSettings, budget: Budget, client: httpx.Client) -> None:
        self.config = config
        self.budget = budget
        self.client = client
        self.requests = 0
        self.failures_in_a_row = 0
        self._next_slot = 0.0

    def _describe(self, query: str) -> str:
        return f"{self.config.provider} for {query!r}"

    def _send(self, query: str) -> _Answer:
        if not self.budget.take():
            raise BudgetSpent
        wait = self._next_slot - clock.monotonic()
        if wait > 0:
            clock.sleep(wait)
        self._next_slot = clock.monotonic() + 1 / self.config.rps
        params: dict[str, str | int] = {"key": self.config.api_key, "q": query, "format": "json", "countrycodes": "ke",
                                        "limit": 1}
        try:
            with self.client.stream("GET", self.config.url, params=params) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise LookupFailed(f"{self._describe(query)}: an answer over {MAX_ANSWER_BYTES} bytes")
                self.requests += 1
                return _Answer(response.status_code, body)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            self.budget.give_back()  # never reached the provider: not a request
            raise
        except httpx.TransportError:
            self.requests += 1
            raise
        except httpx.DecodingError:  # an answer whose encoding (gzip, charset) is broken: not a search result
            self.requests += 1
            raise LookupFailed(f"{self._describe(query)}: an answer that cannot be decoded") from None

    def _failed(self, problem: str, attempt: int) -> None:
        """A transport failure or 5xx: stop the run after too many in a row, else wait before the next attempt."""
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= self.config.max_failures:
            raise ProviderDown(f"{self.config.provider}: {problem} on {self.failures_in_a_row} requests in a row; "
                               "stopped asking (what was found is kept; the rest is asked next run)")
        if attempt < ATTEMPTS - 1:
            clock.sleep(_backoff(attempt))

    def search(self, query: str) -> Found | None:
        """The best match, or None when the provider has nothing for `query`."""
        problem = ""
        for attempt in range(ATTEMPTS):
            try:
                answer = self._send(query)
            except httpx.TimeoutException:
                problem = f"no answer within {self.config.timeout_s:g} s"
                self._failed(problem, attempt)
                continue
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
                self._failed(problem, attempt)
                continue
            status = answer.status
            if status >= 500:
                problem = f"server error HTTP {status}"
                self._failed(problem, attempt)
                continue
            self.failures_in_a_row = 0
            if status == 200:
                return _first_match(answer)
            if status == 404:
                return None  # LocationIQ's "Unable to geocode"
            if status in (401, 403):
                raise KeyRejected(f"{self.config.provider} rejected the API key (HTTP {status}): "
                                  "check GEOCODER_API_KEY; nothing more will be asked")
            if status == 429:
                if "day" in _error_text(answer).lower():
                    self.budget.mark_exhausted()
                    raise BudgetSpent
                minute = "minute" in _error_text(answer).lower()
                problem = f"rate limited ({_error_text(answer) or 'HTTP 429'})"
                if attempt < ATTEMPTS - 1:
                    clock.sleep(MINUTE_WINDOW_WAIT_S if minute else SECOND_WINDOW_WAIT_S)
                continue
            raise LookupFailed(f"{self._describe(query)}: HTTP {status} {_error_text(answer)}".strip())
        raise LookupFailed(f"{self._describe(query)}: {problem} after {ATTEMPTS} attempts")


def _backoff(attempt: int) -> float:
    return SERVER_ERROR_WAITS_S[min(attempt, len(SERVER_ERROR_WAITS_S) - 1)]


def _error_text(answer: _Answer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _first_match(answer: _Answer) -> Found | None:
    try:
        matches = answer.json()
        if not matches:
            return None  # Nominatim's "nothing found"
        best = matches[0]  # type: ignore[index]
        lat, lon = float(best["lat"]), float(best["lon"])
        osm_id = best.get("osm_id")
        found = Found(lat, lon, best.get("osm_type"), int(osm_id) if osm_id not in (None, "") else None,
                      best.get("display_name"))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise LookupFailed("the geocoder answered 200 with a body that is not a search result") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise LookupFailed(f"the geocoder answered coordinates out of range ({lat}, {lon})")
    return found
