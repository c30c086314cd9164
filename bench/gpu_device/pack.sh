#!/bin/bash
# Here, once: build the GPU check's payload in .gpu/ (git-ignored) for a lent machine without network.
#   bash bench/gpu_device/pack.sh [BASELINE_REV]
# .gpu/chunk0..chunk3 (≤ 55 MB each: a device call carries 64 MiB) + payload.sha256, and with BASELINE_REV the
# gateway at that revision in .gpu/base/services for `--gateway-baseline`. The tar holds:
#   vllm-pkg.tar.xz   vLLM 0.26.0's wheel unpacked, without what the distill on an H100 does not load: the FA2
#                     kernels (FA3 serves Hopper), the vllm-rs binary, the SM100 FMHA headers and deep_gemm's
#                     modules for Pythons other than the device's 3.12;
#   deps/*.whl        what vLLM, the gateway, Locust and the openai SDK need that the device image lacks
#                     (device-packages.txt: the image's list as the device notes give it), by resolve_wheels.py;
#   llama-src.tar.xz  llama.cpp's source as the llama-cpp-python 0.3.36 sdist vendors it, without docs, tests,
#                     examples, benches, models and conversion scripts (its CMake configures without them);
#   ggml-vocab-qwen2.gguf  the model family's tokenizer, from the same sdist.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dl=${GPU_DL:-/work/gpu-dl}
py=${PYTHON:-$repo/.venv/bin/python}
mkdir -p "$dl"/whl "$dl"/sdist "$dl"/deps "$dl"/stage
cd "$dl"
pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d whl vllm==0.26.0
pip download -q --no-deps --no-binary :all: -d sdist llama-cpp-python==0.3.36

rm -rf stage/* pkg && mkdir -p pkg
unzip -q whl/vllm-0.26.0-*.whl -d pkg -x 'vllm/vllm_flash_attn/_vllm_fa2_C*' 'vllm/vllm-rs' \
  'vllm/third_party/fmha_sm100/*' 'vllm/third_party/deep_gemm/_C.cpython-310-*' \
  'vllm/third_party/deep_gemm/_C.cpython-311-*' 'vllm/third_party/deep_gemm/_C.cpython-31[3-9]-*'
tar -C pkg -cf - . | xz -6 -T2 > stage/vllm-pkg.tar.xz

"$py" "$repo/bench/gpu_device/resolve_wheels.py" --have "$repo/bench/gpu_device/device-packages.txt" --out deps \
  vllm==0.26.0 openai locust fastapi "uvicorn[standard]" httptools aiohttp httpx prometheus-client orjson \
  pydantic pydantic-settings pyyaml gguf > deps.log
grep "^FAIL" deps.log || true
mkdir -p stage/deps && cp deps/*.whl stage/deps/ && rm -f stage/deps/vllm-*.whl

rm -rf llama && mkdir llama && tar -xzf sdist/llama_cpp_python-0.3.36.tar.gz -C llama
src=$(echo llama/llama_cpp_python-0.3.36/vendor/llama.cpp)
cp "$src/models/ggml-vocab-qwen2.gguf" stage/
tar -C "$(dirname "$src")" --exclude=llama.cpp/docs --exclude=llama.cpp/tests --exclude=llama.cpp/examples \
  --exclude=llama.cpp/benches --exclude=llama.cpp/models --exclude='llama.cpp/convert_*' -cf - llama.cpp | xz -6 -T2 > stage/llama-src.tar.xz

rm -rf "$repo/.gpu" && mkdir -p "$repo/.gpu"
tar -C stage -cf payload.tar .
sha256sum payload.tar > "$repo/.gpu/payload.sha256"
split -b 55M -d -a 1 payload.tar "$repo/.gpu/chunk"
[ ! -e "$repo/.gpu/chunk4" ] || { echo "payload over 4 chunks: install.sh and the upload calls take 4" >&2; exit 1; }
rm payload.tar
if [ -n "${1:-}" ]; then
  mkdir -p "$repo/.gpu/base" && git -C "$repo" archive "$1" services | tar -x -C "$repo/.gpu/base"
fi
ls -la "$repo/.gpu"
