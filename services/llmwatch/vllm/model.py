"""The model llmwatch serves, DeepSeek-R1-Distill-Qwen-1.5B, in numbers: its size and its geometry.

Source: the model's `config.json` on Hugging Face (architecture Qwen2ForCausalLM, the distill's base). The memory
math follows from them: decoding one stream reads every FP16 weight once per token, and each context token holds
K and V for every layer and KV head.
"""

from __future__ import annotations

MODEL_ID = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# The parsers every engine of the stack starts with (docker-compose.yml's vllm and sim, deploy/k8s, the demo, the
# benches): the thinking in `reasoning`, and tool calls. vLLM serves no tool_choice but "none" without a tool-call
# parser and auto tool choice, not even "required" or a named function (docs/open-webui.md); hermes is the parser
# that starts with this model's vocabulary.
SERVE_FLAGS = ("--reasoning-parser", "deepseek_r1", "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
# DeepSeek's recommended sampling for R1 (the model card; also its generation_config.json): the load test sends it, and
# the gateway's warm-up batch samples with it.
R1_SAMPLING = {"temperature": 0.6, "top_p": 0.95}

NUM_LAYERS = 28
HIDDEN_SIZE = 1536
NUM_ATTENTION_HEADS = 12
NUM_KV_HEADS = 2
HEAD_DIM = HIDDEN_SIZE // NUM_ATTENTION_HEADS  # 128
INTERMEDIATE_SIZE = 8960
VOCAB_SIZE = 151936
MAX_POSITION_EMBEDDINGS = 131072  # the model's own context; the stack's --max-model-len is smaller

FP16_BYTES = 2
PARAMS = 1.78e9  # 1.777 B, rounded as the cost model uses it
FP16_WEIGHT_BYTES = 3.56e9  # PARAMS x 2 bytes: what one decode step reads, and what a GPU must hold before any KV
FLOPS_PER_TOKEN = 2 * PARAMS  # one multiply-add per parameter per token
KV_BYTES_PER_TOKEN = 2 * NUM_LAYERS * NUM_KV_HEADS * HEAD_DIM * FP16_BYTES  # K and V: 28 KiB per context token
