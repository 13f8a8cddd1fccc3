"""``python -m storage.export_worker``: make the organisers' workbook in a process of its own.

The bot (``storage.export.WorkerExporter``) starts it with a JSON job on standard input
(the database URL, the round, the quota, the output file) and reads one JSON line back on
standard output: what the workbook holds, the time it took, the worker's peak memory. The
worker runs at a lower priority (``nice``), so the bot answering contestants comes first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
import traceback
from datetime import datetime
from typing import Any

from contest.ports import ExportRequest
from contest.rules import QuotaRules
from storage.db import create_engine
from storage.export import write_workbook


async def run(job: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if job.get("search_path"):
        kwargs["connect_args"] = {"server_settings": {"search_path": job["search_path"]}}
    engine = create_engine(job["database_url"], pg_pool_size=2, **kwargs)
    request = ExportRequest(
        round=int(job["round"]),
        quota=QuotaRules(int(job["min_leaders"]), float(job["min_staff_ratio"])),
        at=datetime.fromisoformat(job["at"]),
        tie_break=tuple(str(b) for b in job.get("tie_break") or ("time",)),
        official=int(job["official"]) if job.get("official") is not None else None,
    )
    began, cpu = time.perf_counter(), time.process_time()
    try:
        written = await write_workbook(engine, request, job["output"])
    finally:
        await engine.dispose()
    return {
        "contestants": written.contestants,
        "ranked": written.ranked,
        "attempts": written.attempts,
        "questions": written.questions,
        "seconds": time.perf_counter() - began,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "file_bytes": os.path.getsize(job["output"]),
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    job = json.loads(sys.stdin.read())
    niceness = int(job.get("niceness") or 0)
    if niceness:
        os.nice(niceness)
    try:
        summary = asyncio.run(run(job))
    except Exception:
        # The bot logs these lines (its log masks phone numbers and birth dates).
        traceback.print_exc(file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
