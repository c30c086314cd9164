#!/usr/bin/env python3
"""Write a GGUF with DeepSeek-R1-Distill-Qwen-1.5B's architecture and tokenizer, and random weights.

    scripts/make-gguf.py --arch r1-distill-1.5b|tiny --type f16|q4_k_m --out PATH [--vocab FILE] [--quantize BIN]

The compute and memory cost of the file are the real model's; the text it generates is noise. `tiny` keeps the
vocabulary and chat template with two small layers, for fast tests.

The model's facts (architecture, added tokens, ids, chat template, and where each comes from) are bench/distill.py's;
the base vocabulary and merges are llama.cpp's models/ggml-vocab-qwen2.gguf.
q4_k_m goes through llama.cpp's own llama-quantize, so the layout is exactly what llama.cpp writes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: bench.distill
from bench.distill import (
    ADDED_TOKENS,
    ARCHS,
    BOS_ID,
    CHAT_TEMPLATE,
    CONTEXT_LENGTH,
    EOS_ID,
    RMS_NORM_EPS,
    ROPE_THETA,
    VOCAB_SIZE,
    Arch,
    read_gguf_vocab,
)

# Turn markers llama.cpp must not print although the published tokenizer does not call them special: <｜User｜>,
# <｜Assistant｜>, <|EOT|> (the GGUF this script wrote before bench/distill.py existed marked them so).
CONTROL_TURNS = {151644, 151645, 151647}

CACHE = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch"))
LLAMA_BIN = CACHE / "llama.cpp" / "bin"


# bench/distill.py's special tokens are never printed: llama.cpp marks them CONTROL; the others print as text
# (USER_DEFINED), which is how llama.cpp's reasoning parser sees <think> and </think>.
SPECIAL_TOKENS: dict[int, tuple[str, gguf.TokenType]] = {
    token_id: (text, gguf.TokenType.CONTROL if special or token_id in CONTROL_TURNS else gguf.TokenType.USER_DEFINED)
    for token_id, (text, special) in ADDED_TOKENS.items()
}


def read_vocab(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of llama.cpp's Qwen2 vocabulary GGUF, with the distill's tokens written in."""
    try:
        tokens, types, merges = read_gguf_vocab(path)
    except ValueError as exc:
        raise SystemExit(f"make-gguf: --vocab {exc}") from None
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
