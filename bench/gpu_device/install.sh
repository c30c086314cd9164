#!/bin/bash
# Device side, once per machine: assemble the payload, unpack vLLM and the wheels into /tmp/site, check imports.
set -e
repo=$PWD
sum=$(cut -d" " -f1 .gpu/payload.sha256)
cd /root/up
cat chunk0 chunk1 chunk2 chunk3 > payload.tar
echo "$sum  payload.tar" | sha256sum -c -
mkdir -p /root/p /tmp/site
tar -xf payload.tar -C /root/p && rm -f chunk0 chunk1 chunk2 chunk3 payload.tar
xz -dc /root/p/vllm-pkg.tar.xz | tar -x -C /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /root/p/deps/*.whl 2>&1 | grep -v -i "warning" | tail -5
export PYTHONPATH=/tmp/site
# xgrammar 0.2.9 passes extra_lib_paths= to apache-tvm-ffi's load_lib_module, which the tvm-ffi 0.1.10 wheel in the
# payload does not take, and vLLM's API server imports xgrammar at start. Without the argument it loads its library
# from its own folder: vLLM 0.26.0 served with this on the lent H100 (2026-12-06).
grep -rl "extra_lib_paths" /tmp/site/xgrammar | xargs -r sed -i 's/, *extra_lib_paths=package_paths//'

python3 -c "import vllm, openai, locust, fastapi, uvicorn, pydantic_settings, orjson, prometheus_client, gguf, pynvml; print('vllm', vllm.__version__, 'openai', openai.__version__, 'locust', locust.__version__)"
python3 -c "import vllm.entrypoints.openai.api_server" 2>&1 | tail -3
echo INSTALL-OK
# The llama.cpp CUDA build and the Q4_K_M GGUF, in the background at the lowest priority (nice 19) while the first
# vLLM run measures (its engine is batch 4, far from CPU-bound); the llama.cpp run waits for LLAMA-READY.
[ "${BUILD_LLAMA:-1}" = 1 ] || { echo "llama build skipped (BUILD_LLAMA=0)"; exit 0; }
rm -rf /root/code-snap && mkdir /root/code-snap && cp -r "$repo"/scripts "$repo"/services "$repo"/bench /root/code-snap/
cp "$repo"/bench/gpu_device/build-llama.sh /root/
setsid nohup nice -n 19 bash /root/build-llama.sh /root/code-snap > /root/llama-bg.log 2>&1 < /dev/null &
echo "llama build started in the background"
