"""HTTP routes: the OpenAI-compatible endpoints vLLM serves, plus /admin/faults."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http import HttpVersion11
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from llmwatch.simulator.faults import FORCE_HEADER
from llmwatch.simulator.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    parse,
)
from llmwatch.simulator.sequence import Listener
from llmwatch.simulator.simulator import VLLM_VERSION, Simulator
from llmwatch.simulator.streams import ChatStreamListener, CollectListener, CompletionStreamListener
from llmwatch.simulator.textgen import chat_prompt_tokens, completion_prompt_tokens, generate, message_text
from llmwatch.simulator.tools import (
    ToolCall,
    arguments_of,
    choose_tool,
    json_answer,
    with_json_answer,
    with_tool_call,
)
from llmwatch.simulator.wire import (
    ChatFrames,
    CompletionFrames,
    chat_response,
    completion_response,
    models_body,
    phrase,
    tool_call_dict,
)

log = logging.getLogger(__name__)
JSON = "application/json"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type=JSON, headers=headers)


def _error(exc: ApiError) -> web.Response:
    return web.Response(body=exc.body, status=exc.status, content_type=JSON)


class Routes:
    def __init__(self, sim: Simulator, registry: CollectorRegistry) -> None:
        self.sim = sim
        self.registry = registry

    def add_to(self, app: web.Application, enable_admin: bool) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        if enable_admin:
            app.router.add_get("/admin/faults", self.get_faults)
            app.router.add_post("/admin/faults", self.post_faults)

    async def health(self, request: web.Request) -> web.Response:
        """200 once the modelled weights are loaded (--startup-seconds), 503 before."""
        return web.Response(status=200 if self.sim.ready else 503)

    async def version(self, request: web.Request) -> web.Response:
        """The vLLM version this simulator imitates."""
        return _json({"version": VLLM_VERSION})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus exposition of the vllm:* and http_* series."""
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def models(self, request: web.Request) -> web.Response:
        """The one served model, as vLLM's /v1/models lists it."""
        s = self.sim.settings
        return _json(
            models_body(s.served_model_name, s.max_model_len, int(time.time()), f"modelperm-{uuid.uuid4().hex}")
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        """Current fault settings (keys accepted by POST)."""
        return _json({**self.sim.faults.fault_values(), "force_header": FORCE_HEADER})

    async def post_faults(self, request: web.Request) -> web.Response:
        """Merge a JSON object into the fault settings; answers the new settings."""
        try:
            self.sim.faults = self.sim.faults.merged(orjson.loads(await request.read()))
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _error(ApiError(400, str(exc), "BadRequestError"))
        log.info("faults now %s", self.sim.faults.fault_values())
        return _json(self.sim.faults.fault_values())

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """Chat completion, streamed (SSE) or not, with R1 reasoning split when --reasoning-parser is set."""
        try:
            body = parse(ChatRequest, await self._body(request))
            prompt_text = "\n".join(message_text(m.get("content")) for m in body.messages)
            prompt_tokens = chat_prompt_tokens(body.messages)
            users = [m for m in body.messages if m.get("role") == "user"] or body.messages
            language_text = message_text(users[-1].get("content"))
            return await self._serve(request, body, "chatcmpl-", prompt_tokens, prompt_text, language_text)
        except ApiError as exc:
            return _error(exc)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """Text completion: the same R1 text, `</think>` inline (no chat template, no parser)."""
        try:
            body = parse(CompletionRequest, await self._body(request))
            prompt = body.prompt_text()
            return await self._serve(request, body, "cmpl-", completion_prompt_tokens(prompt), prompt, prompt)
        except ApiError as exc:
            return _error(exc)

    async def _body(self, request: web.Request) -> bytes:
        if not self.sim.ready:
            raise ApiError(503, "The engine is still loading the model; retry when /health answers 200.", phrase(503))
        return await request.read()

    async def _serve(
        self,
        request: web.Request,
        body: ChatRequest | CompletionRequest,
        prefix: str,
        prompt_tokens: int,
        prompt_text: str,
        language_text: str,
    ) -> web.StreamResponse:
        sim = self.sim
        s = sim.settings
        is_chat = isinstance(body, ChatRequest)
        extra = (body.model_extra or {}) if is_chat else {}
        # SimSettings refuses --enable-auto-tool-choice without --tool-call-parser, so this flag means both.
        chosen = choose_tool(extra, sim.rng, s.tool_call_share, s.enable_auto_tool_choice)
        max_tokens, param = body.output_limit()
        decision = sim.admit(body.model, prompt_tokens, max_tokens, param, request.headers.get(FORCE_HEADER))
        base = sim.request_base_id(request.headers.get("X-Request-Id"), body.request_id)
        gen = generate(prompt_text, s.seed, body.seed, language_text)
        tool: ToolCall | None = None
        if chosen is not None:
            gen, tool = with_tool_call(gen, extra, *chosen)
        elif (answer := json_answer(extra, "".join(gen.tokens[gen.think_end + 1 :]))) is not None:
            gen = with_json_answer(gen, answer)
        plan = sim.plan(gen, prompt_tokens, max_tokens, decision.empty)
        request_id, created, model = prefix + base, int(time.time()), sim.settings.served_model_name
        headers = {"X-Request-Id": base}
        include_usage, continuous = body.usage_flags()
        think_end = plan.think_end if sim.settings.reasoning_parser and is_chat else None
        listener: Listener
        if body.stream:
            response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream; charset=utf-8"})
            await response.prepare(request)
            transport = cast(asyncio.Transport, request.transport)
            chunked = request.version >= HttpVersion11
            if is_chat:
                frames = ChatFrames(request_id, created, model, prompt_tokens, continuous)
                listener = ChatStreamListener(transport, chunked, frames, think_end, include_usage, tool)
            else:
                cframes = CompletionFrames(request_id, created, model, prompt_tokens, continuous)
                listener = CompletionStreamListener(transport, chunked, cframes, include_usage)
        else:
            listener = CollectListener(request.transport)
        seq = sim.sequence(request_id, prompt_tokens, plan, max_tokens, decision, listener, body.filters_tokens())
        sim.engine.submit(seq)
        try:
            reason = await asyncio.shield(seq.done)
        except asyncio.CancelledError:
            sim.engine.abort(seq)
            raise
        if body.stream:
            if reason != "abort":
                await response.write_eof()
            return response
        if reason == "abort":
            raise ApiError(400, "Client disconnected", "BadRequestError")
        out = plan.tokens[: seq.generated]
        if is_chat and tool is not None:
            # vLLM's full generator: the text before the call is the content (none here: null for auto, "" for
            # required and named), the call goes in tool_calls, and a finished call ends in the tool's finish reason.
            reasoning = "".join(out[: min(len(out), tool.start - 1)]) if think_end is not None else None
            calls = [tool_call_dict(tool.call_id, tool.name, arguments_of(out, tool))] if len(out) > tool.start else []
            content = None if tool.finish == "tool_calls" and extra.get("tool_choice") != "required" else ""
            finish = tool.finish if reason == "stop" else reason
            payload = chat_response(
                request_id, created, model, content, reasoning, finish, prompt_tokens, len(out), calls
            )
        elif is_chat:
            content, reasoning = _split(out, think_end)
            payload = chat_response(request_id, created, model, content, reasoning, reason, prompt_tokens, len(out))
        else:
            payload = completion_response(request_id, created, model, "".join(out), reason, prompt_tokens, len(out))
        return _json(payload, headers=headers)


def _split(tokens: list[str], think_end: int | None) -> tuple[str | None, str | None]:
    """(content, reasoning) as vLLM's deepseek_r1 parser returns them; no parser: everything is content."""
    if think_end is None:
        return "".join(tokens), None
    if len(tokens) <= think_end:
        return None, "".join(tokens)
    content = "".join(tokens[think_end + 1 :])
    return content or None, "".join(tokens[:think_end])
