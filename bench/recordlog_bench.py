"""Fetching and grouping Learn's record log: time and peak RSS for 20,000 and 200,000 entries.

Why this shape: a data set of 200,000 records can log 200,000 errors, and the agent must read them
(page by page over REST), save them as CSV, group them and build the email attachment without
holding the log whole. The Learn simulator runs in this process on loopback; each measurement runs
the agent's side in a child process, so its peak RSS (VmHWM) is the client's alone. Memory
must stay flat as the log grows tenfold (target: under 100 MB).

Usage: .venv/bin/python bench/recordlog_bench.py [--sizes 20000,200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RSS_MB = 100.0
HEADER = "external_course_key|external_person_key|data_source_key|role"


def child(url: str, uid: str, folder: str) -> None:
    """The agent's side: stream the log to CSV, group it, build the attachment within 10 MB."""
    from agent.logdigest import collect
    from agent.logreport import log_file
    from agent.records import FileOutcome, Status
    from agent.settings import LearnTargetSettings, Secret
    from agent.targets.learn_rest import LearnLogClient

    settings = LearnTargetSettings(
        name="learn",
        url=url,
        integration="BBLEARN",
        username=Secret("u"),
        password=Secret("p"),
        rest_key=Secret("rest-key"),
        rest_secret=Secret("rest-secret"),
        log_level="error",
    )
    client = LearnLogClient(settings)
    started = time.perf_counter()
    record = collect(uid, client.entries(uid), Path(folder) / "bench.log.csv")
    fetched = time.perf_counter() - started
    outcome = FileOutcome(
        name="bench.txt", route="sis", target="learn", target_type="learn", status=Status.ERRORS, record_log=record
    )
    attached = log_file(outcome, 10 * 1024 * 1024)
    total = time.perf_counter() - started
    print(
        json.dumps(
            {
                "entries": record.total,
                "groups": len(record.groups),
                "complete": record.complete,
                "fetch_and_group_s": round(fetched, 2),
                "with_attachment_s": round(total, 2),
                "attachment": attached.filename if attached else None,
                "attachment_bytes": len(attached.data) if attached else 0,
                "csv_bytes": record.csv_path.stat().st_size if record.csv_path else 0,
                "peak_rss_mb": _own_peak_rss_mb(),
            }
        )
    )


def _own_peak_rss_mb() -> float:
    """VmHWM of this process's own address space. Not `ru_maxrss`: Linux carries that across exec,
    and a child spawned with vfork would report the parent's peak (the simulator's 200,000 rows)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def measure(entries: int) -> dict[str, object]:
    import requests

    from agent.simulator import LearnSimulator

    with LearnSimulator(rows_per_second=1_000_000.0) as sim, tempfile.TemporaryDirectory() as folder:
        lines = [HEADER, *(f"C001|GHOST{i:07d}|SIS|Student" for i in range(1, entries + 1))]
        answer = requests.post(
            sim.upload_url("membership", "store"),
            data=("\n".join(lines) + "\n").encode(),
            auth=(sim.username, sim.password),
            timeout=300,
        )
        uid = answer.text.split("reference code ")[1].split()[0]
        if not sim.wait_idle(600):
            raise SystemExit("the simulator did not finish the data set")
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", sim.url, uid, folder], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        output = process.stdout.read()
        if process.wait() != 0:
            raise SystemExit(f"child failed ({process.returncode}): {output}")
        result: dict[str, object] = json.loads(output)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--child", nargs=3, metavar=("URL", "UID", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    results = [measure(int(size)) for size in args.sizes.split(",")]
    for result in results:
        print(json.dumps(result))
    worst = max(float(str(r["peak_rss_mb"])) for r in results)
    print(f"peak RSS {worst:.1f} MB (target under {TARGET_RSS_MB:.0f} MB, flat as the log grows)")
    return 0 if worst < TARGET_RSS_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
