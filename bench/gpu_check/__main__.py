"""The real engine in the loop: correctness, the KPI sweep direct and through the gateway, the load-test gate.

    python -m bench.gpu_check --out DIR [--engine vllm|llamacpp|sim] [--set VLLM_MAX_NUM_SEQS=256] ...
    make gpu-check GPU_CHECK_ARGS="--set VLLM_MAX_NUM_SEQS=256"

On any CUDA host where `pip install vllm` works (plus this project's `pip install -e '.[test]'`):
1. writes a model folder for DeepSeek-R1-Distill-Qwen-1.5B's exact architecture (config, generation config, the
   tokenizer with the distill's added tokens and chat template: bench/distill.py, from llama.cpp's Qwen2 vocabulary
   file, no download); vLLM loads it with `--load-format dummy`: random weights, so the text is noise and the model
   never writes `</think>` (every answer is reasoning only), but every cost is the real model's;
2. starts the engine with docker-compose.yml's flags for it (the `vllm` service; `--set VAR=VALUE` stands for .env),
   and `llmwatch gateway` in front as compose runs it (a keys file, `--warmup`, `--warmup-batch`, a metrics port);
3. then, in order: correctness through the official `openai` SDK; the KPI sweep (bench/closed_loop.py's `measure`)
   direct and through the gateway, cells alternated direct, gateway, gateway, direct (`--gateway-baseline DIR`:
   also a second gateway from another services/ tree, to compare two versions in one run), each gateway cell with
   the gateway's CPU per forwarded event; the load test's gate
   (loadtest/, as `make load` runs it) with the card's memory sampled through NVML or nvidia-smi; the engine's
   /metrics idle and after load;
4. writes DIR/REPORT.md (markdown tables, each step's duration), DIR/gpu-check.json and the load test's report.html,
   and stops everything it started. Exit 0 when every correctness check passed (the gate's verdict is a finding,
   not a failure of the check).

`--engine llamacpp` runs llama-server (the compose `llama` service's flags plus `--n-gpu-layers all`) on a GGUF,
e.g. scripts/make-gguf.py's Q4_K_M; `--engine sim` runs `llmwatch sim` instead of a GPU engine (tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import shlex
import shutil
import sys
import time
from pathlib import Path

import httpx

from bench import hf_model
from bench.closed_loop import measure
from bench.gpu_check.correctness import correctness
from bench.gpu_check.engine import ENGINE_SERVICE, engine_command, engine_version
from bench.gpu_check.gate import gate
from bench.gpu_check.record import Record, say
from bench.gpu_check.samplers import MemorySampler, gpu_name_and_used
from bench.gpu_check.sweep import sweep
from bench.paths import REPO
from llmwatch.processes import Child, free_port


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0],
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--engine", choices=sorted(ENGINE_SERVICE), default="vllm")
    p.add_argument("--out", type=Path, default=REPO / "run" / "gpu-check")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="a .env value for compose's command, e.g. VLLM_MAX_NUM_SEQS=256 (repeat)")  # fmt: skip
    p.add_argument("--vllm", default="vllm", help="the vllm command (default %(default)s; e.g. 'python3 -m vllm')")
    p.add_argument("--vocab", type=Path, help="llama.cpp's models/ggml-vocab-qwen2.gguf (default: beside llama-server)")
    p.add_argument("--gguf", type=Path, help="--engine llamacpp: the GGUF to serve (scripts/make-gguf.py makes one)")
    p.add_argument("--llama-server", type=Path, help="--engine llamacpp: the llama-server binary")
    p.add_argument("--engine-args", default="", help="extra engine flags after compose's (split on spaces)")
    p.add_argument("--streams", default="1,4,16,64,256", help="sweep concurrencies (default %(default)s)")
    p.add_argument("--requests-per-stream", type=int, default=2, help="requests per sweep cell: streams x this")
    p.add_argument("--min-requests", type=int, default=8, help="at least this many requests per sweep cell")
    p.add_argument("--max-tokens", type=int, default=256, help="answer length of every request (default %(default)s)")
    p.add_argument("--gate-rate", type=float, default=4.0, help="the gate's open-loop req/s (make load's LOAD_RATE)")
    p.add_argument("--gate-seconds", type=int, default=60, help="the gate's run time")
    p.add_argument("--gate-users", type=int, default=64, help="the gate's users (make load's LOAD_USERS)")
    p.add_argument("--skip", default="", help="steps to leave out, comma-separated: correctness,sweep,gate")
    p.add_argument("--gateway-baseline", type=Path, metavar="DIR",
                   help="also sweep a gateway run from DIR, a services/ tree (`git archive REV services`)")  # fmt: skip
    p.add_argument("--start-timeout", type=float, default=900, help="seconds the engine may take to start")
    args = p.parse_args(argv)
    try:
        args.env = dict(item.split("=", 1) for item in args.set)
        args.streams = [int(n) for n in args.streams.split(",")]
    except ValueError:
        p.error("--set takes VAR=VALUE; --streams takes comma-separated integers")
    args.skip = {s for s in args.skip.split(",") if s}
    if args.skip - {"correctness", "sweep", "gate"}:
        p.error(f"--skip: unknown steps {sorted(args.skip - {'correctness', 'sweep', 'gate'})}")
    cache = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch")) / "llama.cpp" / "bin"
    args.llama_server = args.llama_server or cache / "llama-server"
    args.vocab = args.vocab or cache / "ggml-vocab-qwen2.gguf"
    if args.engine == "vllm" and not shutil.which(shlex.split(args.vllm)[0]):
        p.error(f"--vllm {args.vllm!r}: no such command (pip install vllm, or name the command that runs it)")
    if args.engine == "vllm" and not args.vocab.is_file():
        p.error(f"--vocab {args.vocab} not found (scripts/install-llama-cpp.sh puts it beside llama-server)")
    if args.gateway_baseline and not (args.gateway_baseline / "llmwatch" / "gateway").is_dir():
        p.error(f"--gateway-baseline {args.gateway_baseline}: no llmwatch/gateway/ in it (give a services/ tree)")
    if args.engine == "llamacpp" and not (args.gguf and args.gguf.is_file()):
        p.error("--gguf: give the GGUF to serve (scripts/make-gguf.py --arch r1-distill-1.5b --type q4_k_m)")
    if args.engine == "llamacpp" and not args.llama_server.is_file():
        p.error(f"--llama-server {args.llama_server} not found")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rec = Record(args.out)
    facts = rec.data["facts"]
    facts["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts["max_tokens"] = args.max_tokens
    gpu = gpu_name_and_used()
    facts["gpu"] = gpu[0] if gpu else "none (no NVIDIA GPU)"
    args.gpu_class = next((c for c in ("h100", "rtx4090", "rtx3060") if gpu and c in gpu[0].lower().replace(" ", "")),
                          "")  # fmt: skip
    facts["gpu_idle_bytes"] = gpu[1]() if gpu else None
    sampler = MemorySampler(gpu[1]) if gpu else None
    children: list[Child] = []
    engine_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    engine_url, gateway_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{gateway_port}"
    args.engine_url = engine_url
    failed = False
    try:
        with rec.step("model folder and engine command"):
            model_dir = args.out / "model"
            if args.engine == "vllm":
                hf_model.write_hf_model(model_dir, args.vocab)
            cmd, args.batch, facts["model_format"] = engine_command(args, engine_port, model_dir)
            cmd += args.engine_args.split()
            facts["engine_command"] = " ".join(cmd).replace(str(args.out), "$OUT").replace(str(REPO), ".")
            facts["engine_version"] = engine_version(args)
            facts["engine_label"] = f"{args.engine}, batch {args.batch}"
            say(f"   {facts['engine_version']}: {facts['engine_command']}")
        with rec.step("engine start (to /health)"):
            env = {"VLLM_USE_FLASHINFER_SAMPLER": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER", "0")}
            engine = Child(cmd, args.out / "engine.log", env=env)
            children.append(engine)
            engine.wait_http(engine_url + "/health", args.start_timeout)
            models = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"]
            model = str(models[0]["id"])
            max_len = int(models[0].get("max_model_len") or args.env.get("VLLM_MAX_MODEL_LEN", 4096))
        with rec.step("gateway start, warm-up (to /readyz)"):
            key = secrets.token_urlsafe(24)
            keys = args.out / "gateway-api-keys"
            keys.write_text(f"loadtest={key}\n")
            keys.chmod(0o600)
            access_log = args.out / "access.log"
            access_log.unlink(missing_ok=True)
            gateways: dict[str, tuple[str, int]] = {}
            for name, src in [("gateway", None), *([("baseline", args.gateway_baseline)] if args.gateway_baseline
                                                   else [])]:  # fmt: skip
                port, mport = (gateway_port, metrics_port) if name == "gateway" else (free_port(), free_port())
                log = access_log if name == "gateway" else args.out / f"access-{name}.log"
                ppath = {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])} if src else None
                child = Child([
                    sys.executable, "-m", "llmwatch.cli", "gateway", "--upstream", engine_url, "--host", "127.0.0.1",
                    "--port", str(port), "--log-file", str(log), "--no-log-stdout",
                    "--api-keys", str(keys), "--warmup", "2", "--metrics-port", str(mport),
                    # The engine's first-use compiles are paid by the first gateway's batch; a baseline from before
                    # --warmup-batch existed would refuse the flag.
                    *(["--warmup-batch", "17"] if name == "gateway" else []),
                ], args.out / f"{name}.log", env=ppath)  # fmt: skip
                children.append(child)
                # /readyz is on the management listener, as in compose (--metrics-port).
                child.wait_http(f"http://127.0.0.1:{mport}/readyz", 600)
                gateways[name] = (f"http://127.0.0.1:{port}", child.pid)
            time.sleep(1.0)  # let the engine's gauges settle after the warm-up before the idle capture
            if gpu:
                facts["gpu_engine_bytes"] = gpu[1]()
        with rec.step("engine /metrics, idle"):
            (args.out / "metrics-idle.txt").write_text(httpx.get(engine_url + "/metrics", timeout=10).text)
        if "correctness" not in args.skip:
            with rec.step("correctness (openai SDK)"):
                correctness(rec, gateway_url, engine_url, key, access_log, model, max_len, args.engine)
        if "sweep" not in args.skip:
            with rec.step(f"KPI sweep at {','.join(map(str, args.streams))} streams"):
                # One cell at the largest concurrency first, not measured: CUDA graphs and caches for that size.
                asyncio.run(measure(engine_url, max(args.streams), max(args.streams), 16))
                sweep(rec, engine_url, gateways, key, args, engine.pid)
        if "gate" not in args.skip:
            with rec.step(f"load-test gate at {args.gate_rate:g} req/s"):
                gate(rec, gateway_url, key, args, sampler)
        with rec.step("engine /metrics, after load"):
            (args.out / "metrics-after-load.txt").write_text(httpx.get(engine_url + "/metrics", timeout=10).text)
        errors = sum(c.get("errors", 0) for row in rec.data["sweep"] for p in row.values() if isinstance(p, list)
                     for c in p)  # fmt: skip
        failed = not all(c["ok"] for c in rec.data["checks"]) or errors > 0
    except Exception as exc:  # a step failed: its record says why; stop everything and write what ran
        say(f"gpu_check: stopped at a failed step: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        with rec.step("stop gateway and engine"):
            for child in reversed(children):
                child.stop(timeout=60)
        if sampler:
            sampler.stop()
        rec.save()
    say((args.out / "REPORT.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
