"""dlt's side of bench_dlt.py: merge change files into PostgreSQL with dlt, as one process.

    DESTINATION__POSTGRES__CREDENTIALS__HOST=… <dlt's venv>/bin/python benchmarks/dlt_merge.py PIPELINES_DIR FILE...

Runs in the venv bench_dlt.py builds (dlt is no dependency of this project), so it imports nothing of ours.
The database is dlt's own configuration (its DESTINATION__POSTGRES__CREDENTIALS__* variables). It loads the
files as dlt's documentation shows: the rows as the csv module reads them, in file order, into
a resource with write_disposition="merge" on primary key ticket_id (the default delete-insert strategy: the
upsert strategy refuses a key twice in one load, and a replay has every ticket many times), the latest version
kept by dedup_sort on source_updated_at, through the csv loader file format, which the postgres destination
loads with COPY. It prints one JSON line: dlt's version, each table's load file formats, and dlt's own step times.
"""

import csv
import json
import sys

import dlt


def main() -> int:
    pipelines_dir, *paths = sys.argv[1:]

    @dlt.resource(name="inc", primary_key="ticket_id", write_disposition="merge",
                  columns={"source_updated_at": {"dedup_sort": "desc"}})
    def tickets():
        for path in paths:
            with open(path, newline="", encoding="utf-8") as handle:
                # A list a file: dlt takes a page of rows at once faster than rows one by one.
                yield list(csv.DictReader(handle))

    pipeline = dlt.pipeline(pipeline_name="fleettickets_bench", pipelines_dir=pipelines_dir,
                            destination="postgres", dataset_name="tickets")
    info = pipeline.run(tickets(), loader_file_format="csv")
    info.raise_on_failed_jobs()
    jobs = [job for package in info.load_packages for job in package.jobs["completed_jobs"]]
    print(json.dumps({
        "dlt": dlt.__version__,
        "file_formats": {table: sorted({job.job_file_info.file_format for job in jobs
                                         if job.job_file_info.table_name == table})
                         for table in sorted({job.job_file_info.table_name for job in jobs})},
        "steps": {step.step: (step.finished_at - step.started_at).total_seconds()
                  for step in pipeline.last_trace.steps if step.step != "run"},  # run is the three together
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
