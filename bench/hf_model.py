"""The Hugging Face model folder vLLM loads with `--load-format dummy`, made from bench/distill.py's facts: config,
generation config and tokenizer (random weights, exact architecture; no weights written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.distill import (
    ADDED_TOKENS,
    ARCHS,
    BOS_ID,
    CHAT_TEMPLATE,
    CONFIG_TOKEN_ID,
    CONTEXT_LENGTH,
    EOS_ID,
    RMS_NORM_EPS,
    ROPE_THETA,
    VOCAB_SIZE,
    Arch,
    read_gguf_vocab,
)
from llmwatch.vllm.model import R1_SAMPLING

# Qwen2's pre-tokenizer split (tokenizer.json of the Qwen2 family and of the distill).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _added(token_id: int, text: str, special: bool) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": text,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def tokenizer_json(tokens: list[str], merges: list[str]) -> dict[str, Any]:
    """tokenizer.json: Qwen2's byte-level BPE up to id 151642, then the distill's added tokens."""
    first_added = min(ADDED_TOKENS)
    bos = ADDED_TOKENS[BOS_ID][0]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, text, special) for i, (text, special) in sorted(ADDED_TOKENS.items())],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        # add_bos_token: a plain encode starts with BOS, as the published tokenizer's does.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [BOS_ID], "tokens": [bos]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {text: i for i, text in enumerate(tokens[:first_added])},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }


def hf_config(arch: Arch) -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": CONFIG_TOKEN_ID,
        "eos_token_id": CONFIG_TOKEN_ID,
        "hidden_act": "silu",
        "hidden_size": arch.hidden,
        "initializer_range": 0.02,
        "intermediate_size": arch.ffn,
        "max_position_embeddings": CONTEXT_LENGTH,
        "max_window_layers": 21,
        "num_attention_heads": arch.heads,
        "num_hidden_layers": arch.layers,
        "num_key_value_heads": arch.kv_heads,
        "rms_norm_eps": RMS_NORM_EPS,
        "rope_theta": ROPE_THETA,
        "sliding_window": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_mrope": False,
        "use_sliding_window": False,
        "vocab_size": VOCAB_SIZE,
    }


def write_hf_model(folder: Path, vocab_gguf: Path, arch_name: str = "r1-distill-1.5b") -> Path:
    """The model folder vLLM serves with `--load-format dummy`: config, generation config, tokenizer. No weights."""
    tokens, _, merges = read_gguf_vocab(vocab_gguf)
    folder.mkdir(parents=True, exist_ok=True)
    eos, bos = ADDED_TOKENS[EOS_ID][0], ADDED_TOKENS[BOS_ID][0]
    files: dict[str, Any] = {
        "config.json": hf_config(ARCHS[arch_name]),
        "generation_config.json": {
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "do_sample": True,
            **R1_SAMPLING,
        },
        "tokenizer.json": tokenizer_json(tokens, merges),
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": bos,
            "eos_token": eos,
            "pad_token": eos,
            "unk_token": None,
            "clean_up_tokenization_spaces": False,
            "legacy": True,
            "model_max_length": 16384,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "chat_template": CHAT_TEMPLATE,
            "added_tokens_decoder": {
                str(i): {k: v for k, v in _added(i, t, s).items() if k != "id"}
                for i, (t, s) in sorted(ADDED_TOKENS.items())
            },
        },
        "special_tokens_map.json": {"bos_token": bos, "eos_token": eos, "pad_token": eos},
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return folder
