#!/bin/bash
# Device side: `python -m bench.gpu_check --engine llamacpp` on the Q4_K_M (the gpu-q4 configuration); waits for the build.
. bench/gpu_device/env.sh
for i in $(seq 1 120); do grep -q -e LLAMA-READY -e BUILD-FAILED -e Error /root/llama-bg.log 2>/dev/null && break; sleep 5; done
tail -5 /root/llama-bg.log
grep -q LLAMA-READY /root/llama-bg.log || { cp /root/llama-bg.log /root/llama/*.log $OUT/ 2>/dev/null; exit 1; }
out=/root/out/llamacpp-q4
mkdir -p /root/out
python3 -m bench.gpu_check --engine llamacpp --llama-server /root/llama/build/bin/llama-server \
  --gguf /root/q4.gguf --out $out "$@" 2>&1 | tee $out.log | grep -v "^   "
rc=${PIPESTATUS[0]}
cp /root/llama-bg.log /root/out/
tar -czf $OUT/llamacpp-q4.tgz -C /root/out llamacpp-q4 llamacpp-q4.log llama-bg.log
echo "gpu_check llamacpp exit $rc"
