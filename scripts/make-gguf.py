#!/usr/bin/env python3
"""Write a GGUF with DeepSeek-R1-Distill-Qwen-1.5B's architecture and tokenizer, and random weights.

    scripts/make-gguf.py --arch r1-distill-1.5b|tiny --type f16|q4_k_m --out PATH [--vocab FILE] [--quantize BIN]

The compute and memory cost of the file are the real model's; the text it generates is noise. `tiny` keeps the
vocabulary and chat template with two small layers, for fast tests.

Where the numbers come from (the model's published files, read 2026-11; numbers written here, files not copied):
- https://huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B/blob/main/config.json : Qwen2ForCausalLM,
  28 layers, hidden 1536, 12 attention / 2 KV heads, FFN 8960, vocab 151936, max_position_embeddings 131072 (these
  from services/llmwatch/vllm/model.py, the one place llmwatch keeps them), rope_theta 10000, rms_norm_eps 1e-6,
  tie_word_embeddings false.
- .../tokenizer_config.json : the added tokens at 151643-151649 (end/begin of sentence, User, Assistant, EOT,
  <think>, </think>; the think tags are not "special", so they print as text), add_bos_token true, pad = eos,
  and the chat template (DeepSeek's turn markers; the generation prompt opens `<think>\\n`).
- .../generation_config.json : bos_token_id 151646, eos_token_id 151643.
The base vocabulary and merges are llama.cpp's models/ggml-vocab-qwen2.gguf (Qwen2's BPE, pre-tokenizer `qwen2`),
which ships with the llama.cpp source scripts/install-llama-cpp.sh builds; its ids from 151646 up are padding.
q4_k_m goes through llama.cpp's own llama-quantize, so the layout is exactly what llama.cpp writes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from llmwatch.vllm import model

CACHE = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch"))
LLAMA_BIN = CACHE / "llama.cpp" / "bin"


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int


ARCHS = {
    "r1-distill-1.5b": Arch(
        model.NUM_LAYERS, model.HIDDEN_SIZE, model.NUM_ATTENTION_HEADS, model.NUM_KV_HEADS, model.INTERMEDIATE_SIZE
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
# The distill's added tokens (tokenizer_config.json): CONTROL tokens are never printed, USER_DEFINED ones print as
# text, which is how llama.cpp's reasoning parser sees <think> and </think>.
SPECIAL_TOKENS: dict[int, tuple[str, gguf.TokenType]] = {
    151643: ("<｜end▁of▁sentence｜>", gguf.TokenType.CONTROL),
    151644: ("<｜User｜>", gguf.TokenType.CONTROL),
    151645: ("<｜Assistant｜>", gguf.TokenType.CONTROL),
    151646: ("<｜begin▁of▁sentence｜>", gguf.TokenType.CONTROL),
    151647: ("<|EOT|>", gguf.TokenType.CONTROL),
    151648: ("<think>", gguf.TokenType.USER_DEFINED),
    151649: ("</think>", gguf.TokenType.USER_DEFINED),
    151650: ("<|quad_start|>", gguf.TokenType.CONTROL),
    151651: ("<|quad_end|>", gguf.TokenType.CONTROL),
    151652: ("<|vision_start|>", gguf.TokenType.CONTROL),
    151653: ("<|vision_end|>", gguf.TokenType.CONTROL),
    151654: ("<|vision_pad|>", gguf.TokenType.CONTROL),
    151655: ("<|image_pad|>", gguf.TokenType.CONTROL),
    151656: ("<|video_pad|>", gguf.TokenType.CONTROL),
    151657: ("<tool_call>", gguf.TokenType.USER_DEFINED),
    151658: ("</tool_call>", gguf.TokenType.USER_DEFINED),
    151659: ("<|fim_prefix|>", gguf.TokenType.USER_DEFINED),
    151660: ("<|fim_middle|>", gguf.TokenType.USER_DEFINED),
    151661: ("<|fim_suffix|>", gguf.TokenType.USER_DEFINED),
    151662: ("<|fim_pad|>", gguf.TokenType.USER_DEFINED),
    151663: ("<|repo_name|>", gguf.TokenType.USER_DEFINED),
    151664: ("<|file_sep|>", gguf.TokenType.USER_DEFINED),
}

# The distill's chat template, laid out on lines (Jinja's `-` trims the breaks, so it renders as the published
# one-line template does). llama.cpp recognises the DeepSeek-R1 distill by its tool-call line and the
# `content.split('</think>')` of earlier turns, and then parses `<think>...</think>` into reasoning_content.
CHAT_TEMPLATE = "".join(
    line.strip()
    for line in """
{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}
{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}
{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}
{%- endif %}{%- endfor %}
{{bos_token}}{{ns.system_prompt}}
{%- for message in messages %}
{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}
{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}
{%- for tool in message['tool_calls'] %}
{%- if not ns.is_first %}
{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>'
 + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```'
 + '<｜tool▁call▁end｜>'}}
{%- set ns.is_first = true -%}
{%- else %}
{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n'
 + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}
{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}
{%- endif %}
{%- endfor %}
{%- endif %}
{%- if message['role'] == 'assistant' and message['content'] is not none %}
{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}
{%- set ns.is_tool = false -%}
{%- else %}{% set content = message['content'] %}
{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}
{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}
{%- endif %}
{%- endif %}
{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}
{%- if ns.is_output_first %}
{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
{%- set ns.is_output_first = false %}
{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
{%- endif %}
{%- endif %}
{%- endfor -%}
{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}
{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}
""".splitlines()
)


def read_vocab(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of llama.cpp's Qwen2 vocabulary GGUF, with the distill's tokens written in."""
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    tokens_field = fields["tokenizer.ggml.tokens"]
    types_field = fields["tokenizer.ggml.token_type"]
    merges_field = fields["tokenizer.ggml.merges"]
    tokens = [str(tokens_field.contents(i)) for i in range(len(tokens_field.data))]
    types = [int(types_field.contents(i)) for i in range(len(types_field.data))]
    merges = [str(merges_field.contents(i)) for i in range(len(merges_field.data))]
    if len(tokens) != VOCAB_SIZE:
        raise SystemExit(f"make-gguf: --vocab {path} has {len(tokens)} tokens, expected Qwen2's {VOCAB_SIZE}")
    for token_id, (text, kind) in SPECIAL_TOKENS.items():
        tokens[token_id] = text
        types[token_id] = int(kind)
    return tokens, types, merges


def tensor_shapes(arch: Arch) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of a qwen2 model in llama.cpp's names, as (rows, columns) like the HF weights they stand for."""
    head_dim = arch.hidden // arch.heads
    kv = arch.kv_heads * head_dim
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (VOCAB_SIZE, arch.hidden))]
    for i in range(arch.layers):
        b = f"blk.{i}"
        shapes += [
            (f"{b}.attn_norm.weight", (arch.hidden,)),
            (f"{b}.attn_q.weight", (arch.hidden, arch.hidden)),
            (f"{b}.attn_q.bias", (arch.hidden,)),
            (f"{b}.attn_k.weight", (kv, arch.hidden)),
            (f"{b}.attn_k.bias", (kv,)),
            (f"{b}.attn_v.weight", (kv, arch.hidden)),
            (f"{b}.attn_v.bias", (kv,)),
            (f"{b}.attn_output.weight", (arch.hidden, arch.hidden)),
            (f"{b}.ffn_norm.weight", (arch.hidden,)),
            (f"{b}.ffn_gate.weight", (arch.ffn, arch.hidden)),
            (f"{b}.ffn_up.weight", (arch.ffn, arch.hidden)),
            (f"{b}.ffn_down.weight", (arch.hidden, arch.ffn)),
        ]
    shapes += [("output_norm.weight", (arch.hidden,)), ("output.weight", (VOCAB_SIZE, arch.hidden))]
    return shapes


def write_f16(arch_name: str, out: Path, vocab: Path, seed: int) -> None:
    arch = ARCHS[arch_name]
    tokens, types, merges = read_vocab(vocab)
    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_name(f"DeepSeek-R1-Distill-Qwen-1.5B architecture, random weights ({arch_name})")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(arch.hidden)
    writer.add_feed_forward_length(arch.ffn)
    writer.add_block_count(arch.layers)
    writer.add_head_count(arch.heads)
    writer.add_head_count_kv(arch.kv_heads)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(RMS_NORM_EPS)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_pad_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    shapes = tensor_shapes(arch)
    for name, shape in shapes:
        dtype = np.float32 if len(shape) == 1 else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        writer.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # One pool of N(0, 0.02) values (HF's initializer_range), tiled into each matrix: drawing 1.8e9 fresh normals
    # would take minutes and changes nothing about the cost of running the model.
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 22, dtype=np.float32) * 0.02).astype(np.float16)
    for name, shape in shapes:
        if len(shape) == 1:
            data = np.ones(shape, np.float32) if name.endswith("norm.weight") else np.zeros(shape, np.float32)
        else:
            start = int(rng.integers(0, pool.size))
            data = np.resize(np.roll(pool, -start), shape)
        writer.write_tensor_data(data)
    writer.close()


def quantize(src: Path, out: Path, quantize_bin: Path) -> None:
    if not quantize_bin.is_file():
        raise SystemExit(f"make-gguf: --quantize {quantize_bin} not found; build it with scripts/install-llama-cpp.sh")
    result = subprocess.run([str(quantize_bin), str(src), str(out), "Q4_K_M"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-2000:])
        raise SystemExit(f"make-gguf: llama-quantize exited {result.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), required=True)
    parser.add_argument("--type", choices=["f16", "q4_k_m"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vocab", type=Path, default=LLAMA_BIN / "ggml-vocab-qwen2.gguf")
    parser.add_argument("--quantize", type=Path, default=LLAMA_BIN / "llama-quantize")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.vocab.is_file():
        parser.error(f"--vocab {args.vocab} not found; scripts/install-llama-cpp.sh puts it next to llama-server")
    if not args.out.parent.is_dir():
        parser.error(f"--out: folder {args.out.parent} does not exist")
    if args.type == "f16":
        write_f16(args.arch, args.out, args.vocab, args.seed)
        return 0
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        f16 = Path(tmp) / "f16.gguf"
        write_f16(args.arch, f16, args.vocab, args.seed)
        quantize(f16, args.out, args.quantize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
