"""bench/distill.py and bench/hf_model.py: the model folder vLLM loads for the GPU check, from the published facts."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from bench import distill, hf_model

from tests.support import REPO

pytestmark = pytest.mark.unit

VOCAB = Path.home() / ".cache" / "llmwatch" / "llama.cpp" / "bin" / "ggml-vocab-qwen2.gguf"


def render(messages: list[dict[str, str]]) -> str:
    """The chat template as transformers renders it (jinja2, the loop controls on, trimmed blocks off)."""
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    template = env.from_string(distill.CHAT_TEMPLATE)
    return template.render(messages=messages, add_generation_prompt=True, bos_token="<｜begin▁of▁sentence｜>")


def test_the_template_opens_the_answer_inside_think() -> None:
    text = render([{"role": "user", "content": "Hi"}])
    assert text == "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n"


def test_earlier_answers_lose_their_reasoning() -> None:
    text = render([
        {"role": "user", "content": "A"}, {"role": "assistant", "content": "<think>x</think>B"},
        {"role": "user", "content": "C"},
    ])  # fmt: skip
    assert text == (
        "<｜begin▁of▁sentence｜><｜User｜>A<｜Assistant｜>B<｜end▁of▁sentence｜><｜User｜>C<｜Assistant｜><think>\n"
    )


def test_make_gguf_uses_the_same_facts() -> None:
    source = (REPO / "scripts" / "make-gguf.py").read_text()
    assert "from bench.distill import" in source and "CHAT_TEMPLATE = " not in source


def test_the_model_folder_has_the_distills_ids_tokens_and_template(tmp_path: Path) -> None:
    if not VOCAB.is_file():
        raise AssertionError(f"{VOCAB} not found: run `scripts/install.sh test` (make test does)")
    folder = hf_model.write_hf_model(tmp_path / "model", VOCAB)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["num_hidden_layers"] == 28
    assert (config["hidden_size"], config["num_key_value_heads"], config["vocab_size"]) == (1536, 2, 151936)
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (151646, 151643)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    assert len(vocab) == 151643 and max(vocab.values()) == 151642
    added = {t["id"]: (t["content"], t["special"]) for t in tokenizer["added_tokens"]}
    assert added == distill.ADDED_TOKENS
    assert not set(distill.TURN_MARKERS) & set(vocab), "each turn marker is one added token, not BPE pieces"
    assert {m for m, _ in added.values()} >= set(distill.TURN_MARKERS)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    assert settings["chat_template"] == distill.CHAT_TEMPLATE and settings["add_bos_token"] is True
    assert settings["bos_token"] == added[151646][0] and settings["eos_token"] == added[151643][0]
