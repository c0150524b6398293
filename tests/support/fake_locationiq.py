"""A local HTTP server that answers like LocationIQ's /v1/search (Nominatim-compatible JSON).

Tests give it places (a query fragment → lat, lon) and, when they need them,
scripted answers (429s, 401, slow replies) consumed before the places are
looked up. It records every request it receives.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Scripted:
    status: int = 200
    error: str | None = None
    delay_s: float = 0.0
    body: object = None


@dataclass
class FakeLocationIQ:
    places: dict[str, tuple[float, float]] = field(default_factory=dict)
    script: list[Scripted] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    empty_list_for_misses: bool = False
    """Answer a miss as Nominatim does (200 and []), not as LocationIQ (404)."""

    def start(self) -> FakeLocationIQ:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                fake.requests.append(params)
                status, body, delay = fake.answer(params)
                time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/search"

    @property
    def queries(self) -> list[str]:
        return [request.get("q", "") for request in self.requests]

    def answer(self, params: dict[str, str]) -> tuple[int, object, float]:
        if self.script:
            scripted = self.script.pop(0)
            if scripted.status != 200 or scripted.body is not None:
                return scripted.status, scripted.body or {"error": scripted.error}, scripted.delay_s
            delay = scripted.delay_s
        else:
            delay = 0.0
        query = params.get("q", "")
        for fragment, (lat, lon) in self.places.items():
            if fragment in query:
                return 200, [{
                    "place_id": "331411230", "licence": "https://locationiq.com/attribution",
                    "osm_type": "way", "osm_id": str(abs(hash(fragment)) % 10**9),
                    "boundingbox": [str(lat - 0.01), str(lat + 0.01), str(lon - 0.01), str(lon + 0.01)],
                    "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "display_name": f"{fragment}, Kenya",
                    "class": "highway", "type": "residential", "importance": 0.41,
                }], delay
        if self.empty_list_for_misses:
            return 200, [], delay
        return 404, {"error": "Unable to geocode"}, delay

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
