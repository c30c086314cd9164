"""`llmwatch sim` through the official openai SDK and raw HTTP: vLLM 0.33's shapes, ids and errors."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

pytestmark = pytest.mark.integration
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def sim_url(shared_sim_url: str) -> str:
    """Every test here leaves the simulator as it found it: one serves the module."""
    return shared_sim_url


def _client(sim_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sim_url}/v1", api_key="unused", max_retries=0, timeout=30)


def test_stream_has_role_first_reasoning_then_content_and_a_usage_chunk(sim_url: str) -> None:
    chunks = list(_client(sim_url).chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=2000, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].object == "chat.completion.chunk"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    usage = usage_chunk.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    deltas = [c.choices[0].delta for c in chunks[1:-1]]
    kinds = ["reasoning" if getattr(d, "reasoning", None) is not None else "content" for d in deltas]
    first_content = kinds.index("content")
    assert first_content > 0 and set(kinds[first_content:]) == {"content"}  # reasoning, then only content
    assert not any(getattr(d, "reasoning_content", None) for d in deltas)  # 0.33 emits `reasoning` only
    # one delta per token; the lone </think> token is swallowed by the parser
    assert len(deltas) == usage.completion_tokens - 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert "".join(d.content or "" for d in deltas).startswith("\n\n")


def test_non_stream_splits_reasoning_and_is_deterministic(sim_url: str) -> None:
    client = _client(sim_url)
    first = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=2000)
    again = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=2000)
    message = first.choices[0].message
    reasoning = getattr(message, "reasoning", None)
    assert reasoning and reasoning.endswith("\n") and "</think>" not in reasoning
    assert message.content and message.content.startswith("\n\n")
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.completion_tokens > 10
    assert first.usage.completion_tokens_details is None  # vLLM's UsageInfo has no such field
    assert (message.content, reasoning) == (
        again.choices[0].message.content,
        getattr(again.choices[0].message, "reasoning", None),
    )


def test_max_tokens_spent_while_thinking_gives_null_content_and_length(sim_url: str) -> None:
    client = _client(sim_url)
    done = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=5)
    assert done.choices[0].message.content is None
    assert done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=5, stream=True))
    assert all(c.choices[0].delta.content in (None, "") for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chinese_question_gets_a_chinese_answer(sim_url: str) -> None:
    done = _client(sim_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "天空为什么是蓝色的？"}], max_tokens=2000
    )
    text = (done.choices[0].message.content or "") + (getattr(done.choices[0].message, "reasoning", "") or "")
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) > len(text) // 2


def test_x_request_id_is_echoed_and_used_in_the_id(sim_url: str) -> None:
    body = {"messages": QUESTION, "max_tokens": 3}
    response = httpx.post(f"{sim_url}/v1/chat/completions", json=body, headers={"X-Request-Id": "req-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["id"] == "chatcmpl-req-42"
    assert list(response.json()) == ["id", "object", "created", "model", "choices", "service_tier",
                                     "system_fingerprint", "usage", "prompt_logprobs", "prompt_token_ids",
                                     "kv_transfer_params"]  # fmt: skip


def test_continuous_usage_stats_put_usage_on_every_chunk(sim_url: str) -> None:
    body = {"messages": QUESTION, "max_tokens": 4, "stream": True, "stream_options": {"continuous_usage_stats": True}}
    with httpx.stream("POST", f"{sim_url}/v1/chat/completions", json=body) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3, 4, 4]
    assert chunks[-1]["choices"] == []  # include_usage defaults to true in vLLM's StreamOptions


def test_prompt_longer_than_max_model_len_is_vllms_400(sim_url: str) -> None:
    long = "word " * 4000  # 20000 chars -> 5000 tokens > 4096
    response = httpx.post(f"{sim_url}/v1/chat/completions", json={"messages": [{"role": "user", "content": long}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error) == ["message", "type", "param", "code"]
    assert error["type"] == "BadRequestError" and error["param"] == "input_tokens" and error["code"] == 400
    assert error["message"] == (
        "You passed 5005 input tokens and requested 0 output tokens. However, the model's context length is only "
        "4096 tokens, resulting in a maximum input length of 4096 tokens. Please reduce the length of the input "
        "prompt. (parameter=input_tokens, value=5005)"
    )
    with pytest.raises(openai.BadRequestError):
        _client(sim_url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long}])


def test_unknown_model_is_404_and_bad_json_is_400(sim_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        _client(sim_url).chat.completions.create(model="gpt-4", messages=QUESTION)
    assert info.value.body == {"message": "The model `gpt-4` does not exist.", "type": "NotFoundError",
                               "param": None, "code": 404}  # fmt: skip
    bad = httpx.post(f"{sim_url}/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    missing = httpx.post(f"{sim_url}/v1/chat/completions", json={"model": MODEL})
    assert missing.status_code == 400 and "messages" in missing.json()["error"]["message"]


def test_completions_endpoint_streams_and_answers(sim_url: str) -> None:
    client = _client(sim_url)
    done = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
    assert done.object == "text_completion" and done.id.startswith("cmpl-")
    assert done.usage is not None and done.usage.completion_tokens == 8
    pieces = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text
    assert pieces[-1].choices[0].finish_reason == "length"


def test_models_health_and_version(sim_url: str) -> None:
    models = _client(sim_url).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert httpx.get(f"{sim_url}/health").status_code == 200
    assert httpx.get(f"{sim_url}/version").json() == {"version": "0.33.0"}
