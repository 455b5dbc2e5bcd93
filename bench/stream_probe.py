"""What `stream_check` would buy: sending each block as soon as it is checked, against today's post.

Why this exists: issue 15 proposes `stream_check` (send each checked block at once, hold back the
last one until the whole file passed) and asks to make it the default "if it proves safe". Before
weighing the safety question, this measures the gain. The probe is the design at its cheapest: a
forked process runs the same row scan (`agent.linescan.scan_rows`) one block ahead of the upload and
reports each checked offset through a pipe; the upload (`StreamedBody`, the same session and socket
writes as the agent) never sends past the checked offset, and sends the last piece only once the
scan finished clean. It writes no journal, polls nothing and starts fewer modules than `post`, so it
is a lower bound for the feature, not an implementation of it.

Per round, in turn: `feed-agent post --keep` (check split across the cores, then send), the probe,
and `curl --data-binary @FILE` (Blackboard's way), all against bench/discard_server.py; then the
median of each round's ratio to curl.

    .venv/bin/python bench/stream_probe.py                  # 512 MiB, 5 rounds
    .venv/bin/python bench/stream_probe.py --size-mb 1024   # the issue's size (curl's limit)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from upload_bench import (
    FEED_AGENT,
    PASSWORD,
    PYTHON,
    USERNAME,
    feed_agent_config,
    generate,
    measure,
    start_discard_server,
)

PROBE_CHILD = textwrap.dedent("""
    import os, struct, sys
    from pathlib import Path
    import agent.cli  # the start-up `post` pays
    from agent.heap import keep_freed_blocks
    from agent.linescan import scan_rows
    from agent.targets.http import StreamedBody, new_session

    url, path = sys.argv[1], Path(sys.argv[2])
    keep_freed_blocks()
    reading, writing = os.pipe()
    checker = os.fork()
    if checker == 0:  # the check, one block ahead of the upload
        os.close(reading)
        with path.open("rb") as handle:
            header = handle.readline()
            columns = header.decode().rstrip("\\r\\n").split("|")
            class Reporting:
                offset = len(header)
                def read(self, size):
                    # Every whole line before this offset passed; the line cut at the block's end has not
                    # yet, which is safe: the last piece waits for the verdict.
                    os.write(writing, struct.pack("q", self.offset))
                    data = handle.read(size)
                    self.offset += len(data)
                    return data
            counter = scan_rows(Reporting(), b"", columns, "|", [0])
        os.write(writing, struct.pack("q", -1 if counter.finished and not counter.problems else -2))
        os._exit(0)
    os.close(writing)
    checked, verdict = [0], [0]

    def wait_until(offset):
        while verdict[0] == 0 and checked[0] < offset:
            value = struct.unpack("q", os.read(reading, 8))[0]
            if value < 0:
                verdict[0] = value
            else:
                checked[0] = value

    class CheckedBody(StreamedBody):
        def read(self, size=-1):
            end = self.sent + (size if size and size > 0 else 65536)
            wait_until(end if end < len(self) else 1 << 62)  # the last piece waits for the verdict
            if verdict[0] == -2:
                raise RuntimeError("the check failed: the upload stops short of its Content-Length")
            return super().read(size)

    with CheckedBody(path) as body:
        answer = new_session().post(url, data=body, auth=(sys.argv[3], sys.argv[4]),
                                    headers={"Content-Type": "text/plain; charset=utf-8"})
    os.waitpid(checker, 0)
    sys.exit(0 if answer.status_code == 200 and verdict[0] == -1 else 1)
""")


def main() -> int:
    parser = argparse.ArgumentParser(description="stream-while-checking probe vs post vs curl --data-binary")
    parser.add_argument("--size-mb", type=int, default=512, help="file size in MiB (at most 1024: curl's limit)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, clients in turn within each")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: a temp dir)")
    args = parser.parse_args()
    curl = shutil.which("curl")
    if curl is None or not FEED_AGENT.exists():
        print("needs curl (apt-get install -y curl) and ./install.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="stream-probe-", dir=args.dir))
    server, server_url, upload_url = start_discard_server()
    try:
        path = work / "people.txt"
        rows = generate(path, args.size_mb)
        print(f"{path.stat().st_size:,} bytes, {rows:,} rows; server {server_url}", flush=True)
        config = feed_agent_config(work, server_url)
        jobs = {
            "post": [str(FEED_AGENT), "-c", str(config), "post", "--keep", "--object", "person", str(path)],
            "probe": [str(PYTHON), "-c", PROBE_CHILD, upload_url, str(path), USERNAME, PASSWORD],
            "curl": [curl, "-sS", "-o", "/dev/null", "-u", f"{USERNAME}:{PASSWORD}", "--data-binary", f"@{path}",
                     "-H", "Content-Type: text/plain; charset=utf-8", upload_url],
        }  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in jobs}
        for number in range(1, max(1, args.repeat) + 1):
            line = []
            for name, command in jobs.items():
                run = measure(name, command, None, work)
                if not run.ok:
                    print(f"{name} failed: {run.note}", file=sys.stderr)
                    return 1
                seconds[name].append(run.seconds)
                line.append(f"{name} {run.seconds:.2f} s")
            print(f"round {number}: " + ", ".join(line), flush=True)
        for name in ("post", "probe"):
            ratios = sorted(mine / theirs for mine, theirs in zip(seconds[name], seconds["curl"], strict=True))
            print(
                f"{name} / curl --data-binary: median {statistics.median(ratios):.2f} "
                f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; {name} median {statistics.median(seconds[name]):.2f} s, "
                f"curl {statistics.median(seconds['curl']):.2f} s)"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
