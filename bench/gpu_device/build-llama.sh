#!/bin/bash
# Device side: llama-server + llama-quantize with CUDA for sm_90 (the release scripts/install-llama-cpp.sh builds),
# then scripts/make-gguf.py's Q4_K_M of the exact architecture. $1: a snapshot of the code (scripts/, bench/).
code=$1
export PYTHONPATH=/tmp/site:$code/services:$code
set -e
mkdir -p /root/llama && cd /root/llama
[ -d llama.cpp ] || tar -xJf /root/p/llama-src.tar.xz
t0=$(date +%s)
cmake -S llama.cpp -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_COMMIT=0c1e57098 -DLLAMA_BUILD_NUMBER=11312 \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DGGML_OPENMP_FETCH=OFF -DGGML_BUILD_TESTS=OFF \
  -DGGML_BUILD_EXAMPLES=OFF > cmake.log 2>&1 || { tail -30 cmake.log; echo BUILD-FAILED; exit 1; }
cmake --build build -j 14 --target llama-server llama-quantize > build.log 2>&1 || { tail -40 build.log; echo BUILD-FAILED; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"; ./build/bin/llama-server --version 2>&1 | tail -2
t0=$(date +%s)
python3 $code/scripts/make-gguf.py --arch r1-distill-1.5b --type q4_k_m --out /root/q4.gguf \
  --vocab /root/p/ggml-vocab-qwen2.gguf --quantize /root/llama/build/bin/llama-quantize
echo "gguf: $(( $(date +%s) - t0 )) s"; ls -la /root/q4.gguf
echo LLAMA-READY
