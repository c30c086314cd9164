"""A short, mixed burst of traffic through the gateway: chat streams, non-streamed chats, Open WebUI-style tasks, and
agent requests answered with tool calls (tool_choice required or a named function, served through structured outputs
by an engine started with the stack's tool flags, llmwatch.vllm.model.SERVE_FLAGS)."""

from __future__ import annotations

import asyncio
import random

import httpx

from llmwatch.vllm.model import MODEL_ID as MODEL

QUESTIONS = [
    "What is 17 * 23?",
    "Explain why the sky is blue in two sentences.",
    "Write a haiku about GPUs.",
    "用一句话解释什么是大语言模型。",
    "List three prime numbers greater than 100.",
    "北京到上海大约多少公里？",
]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _request(i: int, rng: random.Random) -> dict[str, object]:
    if i % 10 in (4, 7):  # an agent's turn: the answer is a tool call, not text
        choice = "required" if i % 10 == 4 else {"type": "function", "function": {"name": "get_weather"}}
        content = "What is the weather in Hangzhou right now?"
        return {"model": MODEL, "messages": [{"role": "user", "content": content}], "tools": [WEATHER],
                "tool_choice": choice, "max_tokens": 1024, "stream": i % 10 == 4}  # fmt: skip
    if i % 10 == 9:  # what Open WebUI sends after a chat: a background title generation
        content = "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history."
        return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 64}
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}],
        "max_tokens": rng.choice([256, 512, 1024]),
        "stream": rng.random() < 0.8,
    }


async def _send(client: httpx.AsyncClient, body: dict[str, object], gate: asyncio.Semaphore) -> int:
    async with gate:
        if body.get("stream"):
            async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                async for _ in resp.aiter_bytes():
                    pass
                return resp.status_code
        resp = await client.post("/v1/chat/completions", json=body)
        return resp.status_code


async def burst(base_url: str, requests: int, concurrency: int, seed: int = 0, api_key: str | None = None) -> list[int]:
    """Send ``requests`` requests, ``concurrency`` at a time; return their statuses."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as client:
        tasks = [_send(client, _request(i, rng), gate) for i in range(requests)]
        return await asyncio.gather(*tasks)
