"""Download the wheels a GPU machine without network needs for `python -m bench.gpu_check`, breadth first.

    python bench/gpu_device/resolve_wheels.py --have device-packages.txt --out wheels/ vllm==0.26.0 locust openai

Each requirement is fetched with `pip download --no-deps` for CPython 3.12 on manylinux x86_64, its Requires-Dist
lines are evaluated for that platform (with the extras asked for), and what they name is fetched in turn, except
the packages the machine already has (--have: names separated by commas or newlines, e.g. its `pip list`) and the
heavy optional kernel libraries vLLM 0.26.0 runs without (SKIP).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Optional kernels vLLM 0.26.0 served the distill without, and what the GPU image has (torch and its stack).
SKIP = {
    canonicalize_name(name)
    for name in (
        "tilelang", "nvidia-cutlass-dsl", "nvidia-cutlass-dsl-libs-cu13", "quack-kernels", "humming-kernels",
        "tokenspeed-mla", "fastsafetensors", "torchcodec", "PyNvVideoCodec", "torch", "torchaudio", "torchvision",
        "numba", "triton",
    )
}  # fmt: skip
MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_system": "Linux",
           "platform_machine": "x86_64", "sys_platform": "linux", "os_name": "posix", "implementation_name": "cpython",
           "platform_python_implementation": "CPython"}  # fmt: skip
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (5, 12, 17, 24, 27, 28, 31, 34, 35)] + ["manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64"]  # fmt: skip


def download(spec: str, out: Path) -> Path | None:
    flags = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    before = set(out.glob("*.whl"))
    result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                             "--python-version", "3.12", "--implementation", "cp", *flags, "-d", str(out), spec],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode:
        print(f"FAIL {spec}: {(result.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
        return None
    new = set(out.glob("*.whl")) - before
    name = canonicalize_name(Requirement(spec).name)
    found = new or {w for w in out.glob("*.whl") if canonicalize_name(w.name.split("-")[0]) == name}
    return sorted(found)[0] if found else None


def requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        [meta] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        text = z.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--have", type=Path, required=True, help="the GPU machine's packages, comma or newline separated")
    p.add_argument("--out", type=Path, required=True, help="folder for the wheels")
    p.add_argument("requirements", nargs="+")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    have = {canonicalize_name(x.strip()) for x in args.have.read_text().replace("\n", ",").split(",") if x.strip()}
    queue = [Requirement(r) for r in args.requirements]
    done: dict[str, tuple[Path | None, set[str]]] = {}
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in SKIP or name in have:
            continue
        if name in done:
            wheel, extras = done[name]
            if wheel is None or req.extras <= extras:
                continue
            extras |= req.extras  # newly asked extras: walk its requirements again
        else:
            wheel = download(f"{req.name}{req.specifier}", args.out)
            done[name] = (wheel, set(req.extras))
            if wheel is None:
                continue
            print(f"GOT {wheel.name} {wheel.stat().st_size // 1024} KB", flush=True)
        for line in requires(wheel):
            sub = Requirement(line)
            asked = ["", *sorted(done[name][1])]
            if sub.marker is None or any(sub.marker.evaluate({**MARKERS, "extra": e}) for e in asked):
                queue.append(sub)
    return 0


if __name__ == "__main__":
    sys.exit(main())
