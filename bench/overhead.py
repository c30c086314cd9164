"""What does the llmwatch gateway cost? Every path (direct, gateway, LiteLLM, nginx) in one run, same upstream.

    python bench/overhead.py --out bench/out            # full run (make bench): a few minutes
    python bench/overhead.py --quick --out /tmp/b       # smoke run: seconds, numbers meaningless
    python bench/overhead.py --profile --out bench/out  # py-spy profile of the gateway under streaming load
    python bench/overhead.py --perf --profile-workload sse-rate --out bench/out  # kernel vs own code, with nginx

Writes results.json and RESULTS.md into --out; see docs/benchmark.md for how to read them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (make bench): make `bench.*` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import outputs, paths, perf_split, profile
from bench.machine import machine_facts
from bench.procs import cpu_layout, pinned
from bench.runner import WORKLOADS, LoadGen, Plan, run_all, skipped_by
from llmwatch.processes import Child, free_port

log = logging.getLogger("bench.overhead")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/overhead.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--out", type=Path, default=paths.BENCH / "out", help="directory for results.json and RESULTS.md")
    p.add_argument("--quick", action="store_true", help="smoke mode: 1 repetition, a few requests per run")
    p.add_argument("--paths", default=",".join(paths.ORDER), help="comma-separated subset of %(default)s")
    p.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS), help="subset of %(default)s")
    p.add_argument("--reps", type=int, default=3, help="repetitions; each metric is the median of their medians")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before each measured run")
    p.add_argument("--no-pin", action="store_true", help="do not pin the proxy apart from upstream + load generator")
    p.add_argument(
        "--require",
        default="direct,gateway,nginx",
        help="paths that must run; the others are skipped with a reason when unavailable",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the gateway as it was at git revision REV, in the same run (before/after a change)",
    )
    p.add_argument("--profile", action="store_true", help="profile the gateway with py-spy instead of benchmarking")
    p.add_argument("--profile-seconds", type=float, default=10.0, help="how long --profile and --perf sample")
    p.add_argument("--profile-format", choices=("speedscope", "flamegraph"), default="speedscope")
    p.add_argument("--profile-workload", default="sse-c64", help="the load --profile puts on the gateway")
    p.add_argument("--profile-native", action="store_true", help="--profile with C frames (py-spy --native)")
    p.add_argument(
        "--perf",
        action="store_true",
        help="split each proxy's CPU into the kernel's network work and "
        "its own code with Linux perf, under --profile-workload for --profile-seconds (perf-split.md)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    proxy_cpus, load_cpus = cpu_layout(not args.no_pin)
    layout = (
        f"proxy on CPU {proxy_cpus}, upstream + load generator on CPU {load_cpus}"
        if proxy_cpus
        else "none (all processes share all CPUs)"
    )
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    required = {p.strip() for p in args.require.split(",") if p.strip()}
    skipped: dict[str, str] = {}
    for name in list(wanted):
        why = paths.why_unavailable(name) if name != "direct" else None
        if why is not None:
            if name in required:
                log.error("%s is required but unavailable: %s", name, why)
                return 2
            skipped[name] = why
            wanted.remove(name)
            log.warning("skipping %s: %s", name, why)
    if "direct" not in wanted:
        wanted.insert(0, "direct")  # every ratio is against it
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(names) - {w.name for w in WORKLOADS})
    if not names:
        log.error("--workloads: name at least one of %s", ", ".join(w.name for w in WORKLOADS))
        return 2
    if unknown or args.profile_workload not in {w.name for w in WORKLOADS}:
        flag = "--workloads" if unknown else "--profile-workload"
        what = ", ".join(unknown) or args.profile_workload
        log.error("%s: no workload %s; choose from %s", flag, what, ", ".join(w.name for w in WORKLOADS))
        return 2
    workloads = [w for w in WORKLOADS if w.name in names]
    if args.profile or args.perf:
        workloads = [w for w in WORKLOADS if w.name == args.profile_workload]
    machine = machine_facts(paths.litellm_venv())  # before we load it: the load average says who else is busy

    with tempfile.TemporaryDirectory(prefix="llmwatch-bench-") as tmp:
        work = Path(tmp)
        # One upstream process, one listener (engine) per port: a single event loop serves them all, so the
        # harness's core takes no extra context switches for the several-engine case.
        ports = [free_port() for _ in range(max(w.engines for w in workloads))]
        upstream = Child(
            pinned([sys.executable, "-m", "bench.upstream", *(f"--port={p}" for p in ports)], load_cpus),
            work / "upstream.log",
            cwd=paths.REPO,
        )
        loadgen: LoadGen | None = None
        targets: dict[int, list[paths.Target]] = {}
        try:
            for port in ports:
                upstream.wait_http(f"http://127.0.0.1:{port}/health", 15.0)
            if args.perf:
                return perf_split.run(
                    ports, workloads[0], wanted, work, args.out, args.profile_seconds, proxy_cpus, load_cpus
                )
            if args.profile:
                seconds, fmt = args.profile_seconds, args.profile_format
                return profile.run(
                    ports, workloads[0], work, args.out, seconds, fmt, proxy_cpus, load_cpus, args.profile_native
                )
            if args.baseline:
                try:
                    paths.baseline_source(args.baseline, work)
                except ValueError as exc:
                    log.error("%s", exc)
                    return 2
                wanted.append(f"gateway@{args.baseline}")
            out_of = skipped_by(workloads, wanted)
            for engines in sorted({w.engines for w in workloads}):
                mine = [w.name for w in workloads if w.engines == engines]
                names = [n for n in wanted if any(n not in out_of.get(w, {}) for w in mine)]
                targets[engines] = paths.start_all(names, ports[:engines], work, proxy_cpus)
            loadgen = LoadGen(work, load_cpus)
            if args.quick:  # one request per concurrent client, short streams: seconds, even through LiteLLM
                plan = Plan(reps=1, duration=None, warmup=None, requests=1, warmup_requests=2)
                workloads = [dataclasses.replace(w, max_tokens=min(w.max_tokens, 32)) for w in workloads]
            else:
                plan = Plan(reps=args.reps, duration=args.duration, warmup=args.warmup)
            log.info("paths %s; workloads %s; %s", wanted, [w.name for w in workloads], plan)
            results = run_all(targets, workloads, plan, loadgen, upstream.pid, out_of)
        finally:
            if loadgen is not None:
                loadgen.close()
            for started in targets.values():
                paths.stop_all(started)
            upstream.stop()
            _keep_logs(work, args.out)

    doc = outputs.document(
        results,
        workloads,
        wanted,
        skipped,
        plan,
        {"proxy_cpus": proxy_cpus, "load_cpus": load_cpus, "layout": layout},
        machine,
        args.quick,
        " ".join(["python", "bench/overhead.py", *(argv if argv is not None else sys.argv[1:])]),
    )
    (args.out / "results.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    md = outputs.markdown(doc)
    (args.out / "RESULTS.md").write_text(md)
    sys.stdout.write(md)
    failed = {
        f"{wl}/{path}": e["total_errors"]
        for wl, per in doc["results"].items()
        for path, e in per.items()
        if e["total_errors"]
    }
    if failed:
        log.error("requests failed (see results.json error_samples): %s", failed)
        return 1
    return 0


def _keep_logs(work: Path, out: Path) -> None:
    """Copy the children's logs next to the results, for post-mortems (the tmp dir goes away)."""
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    for path in [*work.glob("*.log"), *work.glob("nginx*/*.log")]:
        name = f"{path.parent.name}-{path.name}" if path.parent.name.startswith("nginx") else path.name
        (logs / name).write_bytes(path.read_bytes()[-1_000_000:])


if __name__ == "__main__":
    raise SystemExit(main())
