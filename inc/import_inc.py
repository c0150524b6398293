"""python -m inc.import_inc: drain INC change files into tickets.inc."""

from __future__ import annotations

from collections.abc import Sequence

import history
import pipeline

DATASET = pipeline.Dataset.standard("inc", lock_id=1, post_apply=history.capture)


def _geocoding():  # imported on use: the 20-minute ingest never needs httpx
    import geocoding

    return geocoding


# Geocoding is cross-dataset (one gazetteer and one budget over INC ∪ CRQ) and
# runs from here; its lines are prefixed 'geocode'.
_geocode_log = pipeline.Log("geocode")
COMMANDS = (
    pipeline.Command(
        "--geocode-clusters",
        "geocode every cluster of either dataset that has no usable centroid (needs GEOCODER_API_KEY with --apply)",
        lambda args: _geocoding().geocode_clusters(args.apply, _geocode_log.info, _geocode_log.warn)),
    pipeline.Command(
        "--geocode-locations",
        "geocode the locations of open, actionable tickets without a feed coordinate or a cached result",
        lambda args: _geocoding().geocode_locations(args.apply, _geocode_log.info, _geocode_log.warn)),
    pipeline.Command(
        "--capture-history",
        "run tickets.capture_history() alone: closure events and today's backlog snapshot",
        lambda args: history.capture_alone(args.apply)),
    pipeline.Command(
        "--load-gazetteer",
        "fill the cluster gazetteer from a CSV of known centroids (cluster,lat,lon), asking no geocoder",
        lambda args: _geocoding().load_gazetteer(args.load_gazetteer, args.apply, _geocode_log.info),
        metavar="FILE"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return pipeline.main(DATASET, argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
