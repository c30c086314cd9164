"""DeepSeek-R1-Distill-Qwen-1.5B's published facts, in one place (bench/hf_model.py writes the model folder).

The architecture, added tokens, ids and chat template come from the model's published files (read 2026-11; numbers
and the template text written here, files not copied):
- https://huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B/blob/main/config.json : Qwen2ForCausalLM,
  28 layers, hidden 1536, 12 attention / 2 KV heads, FFN 8960, vocab 151936, rope_theta 10000, rms_norm_eps 1e-6,
  max_position_embeddings 131072, tie_word_embeddings false.
- .../tokenizer_config.json : the added tokens from 151643 up (the think tags and the turn markers are not "special",
  so they print as text), add_bos_token true, pad = eos, and the one-line chat template below, whose generation prompt
  opens `<think>\\n`.
- .../generation_config.json : bos_token_id 151646, eos_token_id 151643, temperature 0.6, top_p 0.95.

The base vocabulary and merges come from llama.cpp's models/ggml-vocab-qwen2.gguf (Qwen2's byte-level BPE), which
ships with the llama.cpp source scripts/install-llama-cpp.sh builds. scripts/make-gguf.py writes a GGUF from these
facts; bench/hf_model.py's `write_hf_model` writes the folder vLLM loads with `--load-format dummy` (random weights,
exact architecture).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmwatch.vllm import model

NAME = model.MODEL_ID


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int


ARCHS = {
    "r1-distill-1.5b": Arch(
        layers=model.NUM_LAYERS,
        hidden=model.HIDDEN_SIZE,
        heads=model.NUM_ATTENTION_HEADS,
        kv_heads=model.NUM_KV_HEADS,
        ffn=model.INTERMEDIATE_SIZE,
    ),
    # 256-wide rows, so q4_k_m quantizes every matrix as it does for the real model.
    "tiny": Arch(layers=2, hidden=256, heads=4, kv_heads=2, ffn=512),
}
VOCAB_SIZE = model.VOCAB_SIZE
CONTEXT_LENGTH = model.MAX_POSITION_EMBEDDINGS
ROPE_THETA = 10000.0
RMS_NORM_EPS = 1e-6
BOS_ID = 151646
EOS_ID = 151643
# config.json's own ids are Qwen2's (the distill left them); generation_config.json's are the ones used.
CONFIG_TOKEN_ID = 151643

# The added tokens: id -> (text, special). Special tokens are never printed (vLLM skips them, llama.cpp marks them
# CONTROL); the others print as text, which is how the reasoning parsers see <think> and </think>.
ADDED_TOKENS: dict[int, tuple[str, bool]] = {
    151643: ("<｜end▁of▁sentence｜>", True),
    151644: ("<｜User｜>", False),
    151645: ("<｜Assistant｜>", False),
    151646: ("<｜begin▁of▁sentence｜>", True),
    151647: ("<|EOT|>", False),
    151648: ("<think>", False),
    151649: ("</think>", False),
    151650: ("<|quad_start|>", True),
    151651: ("<|quad_end|>", True),
    151652: ("<|vision_start|>", True),
    151653: ("<|vision_end|>", True),
    151654: ("<|vision_pad|>", True),
    151655: ("<|image_pad|>", True),
    151656: ("<|video_pad|>", True),
    151657: ("<tool_call>", False),
    151658: ("</tool_call>", False),
    151659: ("<|fim_prefix|>", False),
    151660: ("<|fim_middle|>", False),
    151661: ("<|fim_suffix|>", False),
    151662: ("<|fim_pad|>", False),
    151663: ("<|repo_name|>", False),
    151664: ("<|file_sep|>", False),
}
# The turn markers the template writes; each must be one token (a check of any tokenizer made from these facts).
TURN_MARKERS = (
    "<｜begin▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
    "<｜end▁of▁sentence｜>",
)

# The published template, byte for byte (tokenizer_config.json's `chat_template`; `\\n` is Jinja's escape there).
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + "
    "'```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)


def read_gguf_vocab(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of llama.cpp's Qwen2 vocabulary GGUF (the `gguf` package reads it)."""
    import gguf  # only the model writers need it

    reader = gguf.GGUFReader(path)
    fields = reader.fields
    tokens_field = fields["tokenizer.ggml.tokens"]
    types_field = fields["tokenizer.ggml.token_type"]
    merges_field = fields["tokenizer.ggml.merges"]
    tokens = [str(tokens_field.contents(i)) for i in range(len(tokens_field.data))]
    types = [int(types_field.contents(i)) for i in range(len(types_field.data))]
    merges = [str(merges_field.contents(i)) for i in range(len(merges_field.data))]
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"{path} has {len(tokens)} tokens, expected Qwen2's {VOCAB_SIZE}")
    return tokens, types, merges
