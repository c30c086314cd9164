#!/bin/bash
# Device side: `python -m bench.gpu_check` on vLLM; $1 names the run, the rest are gpu_check flags; results tarred into $OUT.
. bench/gpu_device/env.sh
name=$1; shift
out=/root/out/$name
mkdir -p /root/out
# RUN_TIMEOUT: SIGINT after that many seconds, so the check still stops its children and writes what ran.
timeout --signal=INT "${RUN_TIMEOUT:-3600}" python3 -m bench.gpu_check --engine vllm --vllm "python3 -m vllm.entrypoints.cli.main" \
  --vocab /root/p/ggml-vocab-qwen2.gguf --out $out "$@" 2>&1 | tee $out.log | grep -v "^   " 
rc=${PIPESTATUS[0]}
tar -czf $OUT/$name.tgz --exclude=model -C /root/out $name $name.log
echo "gpu_check $name exit $rc"
