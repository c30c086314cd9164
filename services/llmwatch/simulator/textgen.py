"""Deterministic DeepSeek-R1-style text and the token arithmetic the simulator uses instead of a tokenizer.

Token approximation (documented in docs/simulator.md): one token per CJK character, one per four other
characters (rounded up), plus the R1 chat template's special tokens. Generated English text is cut into
word-sized tokens (a word with its leading space, or one punctuation mark), Chinese text into characters.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any

_CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
_EN_TOKEN = re.compile(r" ?[A-Za-z']+| ?[0-9]+|\n+| ?[^\sA-Za-z0-9]")
THINK_END = "</think>"

_EN_OPEN = [
    "Okay, so I need to figure out {topic}.",
    "Alright, let me think about {topic}.",
    "Hmm, the user is asking about {topic}.",
]
_EN_THINK = [
    "Let me start by recalling what I know.",
    "First, I should break the problem into smaller parts.",
    "Wait, maybe I should check that assumption again.",
    "Hmm, that does not look quite right, so let me reconsider.",
    "So the key point is how the pieces fit together.",
    "I think the simplest approach is to go step by step.",
    "Let me verify this with a quick example.",
    "Another way to look at it is from the other direction.",
    "That seems consistent with what I found earlier.",
    "But I should double-check the edge cases before answering.",
    "Okay, so putting this together gives a clear picture.",
    "Maybe there is a shorter path, but this one is safer.",
]
_EN_ANSWER = [
    "Here is a short answer to {topic}.",
    "The main idea is to take it one step at a time.",
    "First, identify what is known and what is asked.",
    "Then apply the rule that connects them.",
    "Finally, check the result against a simple example.",
    "In short, the answer follows directly from these steps.",
    "If anything is unclear, I can explain a step in more detail.",
]
_ZH_OPEN = ["嗯，用户问的是{topic}。", "好的，我需要想一想{topic}。", "首先，我要理解{topic}这个问题。"]
_ZH_THINK = [
    "我先回忆一下相关的知识。",
    "这个问题可以分成几个小部分来看。",
    "等等，我应该再检查一下这个假设。",
    "嗯，这样好像不太对，我再想想。",
    "关键在于这些部分是怎么联系起来的。",
    "我觉得一步一步来是最稳妥的办法。",
    "用一个简单的例子验证一下。",
    "这样看来，前面的结论是一致的。",
]
_ZH_ANSWER = [
    "关于{topic}，简单来说：",
    "第一，弄清楚已知条件和要求。",
    "第二，运用相应的规则把它们联系起来。",
    "最后，用一个简单的例子检查结果。",
    "如果还有不清楚的地方，我可以再详细解释。",
]


def count_text_tokens(text: str) -> int:
    """Approximate tokens of ``text``: 1 per CJK character + ceil(other characters / 4)."""
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return cjk + (other + 3) // 4


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def chat_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Tokens of the R1 chat template: BOS, a role token per turn, texts, and `<｜Assistant｜><think>\\n`."""
    total = 1
    for message in messages:
        role = message.get("role")
        total += count_text_tokens(message_text(message.get("content")))
        if role != "system":
            total += 1
        if role == "assistant":
            total += 1  # <｜end▁of▁sentence｜> closes earlier answers
    return total + 3


def completion_prompt_tokens(prompt: str) -> int:
    return 1 + count_text_tokens(prompt)


def is_chinese(text: str) -> bool:
    return _CJK.search(text) is not None


@dataclass(frozen=True)
class Generation:
    """Every output token in order; ``think_end`` indexes the `</think>` token; the last token is EOS ("")."""

    tokens: list[str]
    think_end: int


def _rng(seed: int, request_seed: int | None, prompt: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{request_seed}\x00{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _topic(prompt: str, chinese: bool) -> str:
    if chinese:
        chars = [c for c in prompt if _CJK.match(c) and c not in "，。？！、：；"]
        return "".join(chars[:12]) or "这个问题"
    words = re.findall(r"[A-Za-z0-9']+", prompt)
    return " ".join(words[:8]).lower() or "this question"


def _sentences(rng: random.Random, opener: list[str], body: list[str], topic: str, target: int, zh: bool) -> str:
    parts = [rng.choice(opener).format(topic=topic)]
    size = count_text_tokens(parts[0])
    while size < target:
        sentence = rng.choice(body).format(topic=topic)
        parts.append(sentence)
        size += len(sentence) if zh else len(sentence.split()) + 1
    return ("" if zh else " ").join(parts)


def split_tokens(text: str, chinese: bool) -> list[str]:
    if chinese:
        return list(text)
    return _EN_TOKEN.findall(text)


def generate(prompt: str, seed: int, request_seed: int | None = None, question: str | None = None) -> Generation:
    """Reasoning, `</think>`, answer, EOS, seeded by (seed, request seed, prompt); ``question`` (the last user
    message, default the prompt) picks the language and the topic."""
    rng = _rng(seed, request_seed, prompt)
    question = prompt if question is None else question
    zh = is_chinese(question)
    topic = _topic(question, zh)
    think_target = rng.randint(40, 320)
    answer_target = rng.randint(20, 160)
    if zh:
        reasoning = _sentences(rng, _ZH_OPEN, _ZH_THINK, topic, think_target, True)
        answer = _sentences(rng, _ZH_ANSWER[:1], _ZH_ANSWER[1:], topic, answer_target, True)
    else:
        reasoning = _sentences(rng, _EN_OPEN, _EN_THINK, topic, think_target, False)
        answer = _sentences(rng, _EN_ANSWER[:1], _EN_ANSWER[1:], topic, answer_target, False)
    head = [*split_tokens(reasoning, zh), "\n"]
    tokens = [*head, THINK_END, "\n\n", *split_tokens(answer, zh), ""]
    return Generation(tokens=tokens, think_end=len(head))
