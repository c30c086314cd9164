"""Locust load test of an OpenAI-compatible chat endpoint: `locust -f loadtest/locustfile.py --host URL`.

Each user streams chat completions and measures TTFT, TPOT and ITL by vLLM's definitions (loadtest/stream.py).
They show in Locust's UI, CSV and HTML as request types TTFT/TPOT/ITL; the POST row's time is end-to-end.
Raw samples go to the master (Locust's messaging), which judges them against loadtest/slo.yml at the end
(loadtest/gate.py). `--rate R` switches from closed loop (each user sends again when answered) to open loop
(Poisson arrivals at R req/s over all processes). docs/loadtest.md has the rest.
"""

from __future__ import annotations

import itertools
import logging
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a locustfile: make the `loadtest` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent
import gevent.lock
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from llmwatch.answers import is_empty
from llmwatch.gateway.sse import SSEScanner
from loadtest import chat, flags, gate, prompts, shipping, slo
from loadtest.arrivals import Arrivals
from loadtest.stream import Sample, StreamTiming

RATE_MSG = "llmwatch_rate"  # master -> workers: this worker's share of the open-loop rate
DRAIN_MSG = "llmwatch_drain"  # master -> workers: send nothing new, finish what is in flight, send the last samples
log = logging.getLogger("loadtest")

MODEL_LOOKUP = gevent.lock.Semaphore()
ARRIVALS = Arrivals()  # seeded by --seed at the start of a run
state: dict[str, Any] = {"model": None, "cycle": None, "draining": False, "in_flight": 0}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    flags.add(parser)


def apply_rate(environment: Environment, rate: float) -> None:
    """Give each process its share of the open-loop rate (the master splits it over its workers)."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(RATE_MSG, {"rate": rate / max(1, runner.worker_count)})
    else:
        ARRIVALS.set_rate(rate)


def _fail(flag: str, error: Exception) -> None:
    """A bad flag or file: one line naming it, exit status 2 (before any request is sent)."""
    sys.stderr.write(f"{flag}: {error}\n")
    raise SystemExit(2)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None:
        try:
            tags = frozenset(t for t in options.prompt_tags.split(",") if t)
            loaded = prompts.load(Path(options.prompts), tags)
        except prompts.PromptError as exc:
            _fail("--prompts", exc)
        random.Random(0).shuffle(loaded)
        state["cycle"] = itertools.cycle(loaded)
        try:
            slo.load(Path(options.slo))
        except slo.SloError as exc:
            _fail("--slo", exc)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(RATE_MSG, lambda environment, msg, **_: ARRIVALS.set_rate(float(msg.data["rate"])))
        runner.register_message(DRAIN_MSG, lambda environment, msg, **_: _drain(environment), concurrent=True)
        gevent.spawn(shipping.flush_forever, environment, ARRIVALS)
    elif isinstance(runner, MasterRunner):
        runner.register_message(shipping.SAMPLES_MSG, lambda environment, msg, **_: gate.collect(msg.node_id, msg.data))


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    state["draining"] = False
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    gate.reset()
    if environment.shape_class is None:  # a shape (loadtest/sweep.py) sets the rate itself, step by step
        apply_rate(environment, options.rate)


def _drain(environment: Environment) -> None:
    """Start nothing new; let requests in flight finish (up to --stop-timeout); then send the last samples."""
    state["draining"] = True
    runner = environment.runner
    assert runner is not None
    ARRIVALS.stop(waiting=runner.user_count)
    if not isinstance(runner, WorkerRunner):
        return  # one process: Locust's own stop waits --stop-timeout for these, and the samples stay here
    deadline = time.monotonic() + (environment.stop_timeout or 0.0)
    while state["in_flight"] and time.monotonic() < deadline:
        gevent.sleep(0.05)
    shipping.flush(environment, ARRIVALS, final=True)


@events.test_stopping.add_listener
def _stopping(environment: Environment, **_: Any) -> None:
    # Locust's headless master quits its workers and stops listening 0.5 s later, so a worker still finishing a
    # stream would lose its last samples: drain the workers first, and wait (bounded) for their last batch.
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(DRAIN_MSG, {})
        gate.wait_for_finals({client.id for client in runner.clients.values()}, environment.stop_timeout + 10)
    elif runner is not None:
        _drain(environment)


@events.test_stop.add_listener
def _stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) and not state["draining"]:
        shipping.flush(environment, ARRIVALS, final=True)


@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, LocalRunner):
        gate.collect("local", shipping.message(shipping.take(), ARRIVALS, final=True))
    if isinstance(environment.runner, LocalRunner | MasterRunner):
        code = gate.finish(environment)
        if code:
            environment.process_exit_code = code


def _record(environment: Environment, sample: Sample) -> None:
    shipping.SAMPLES.append(sample)
    fire = environment.events.request.fire
    if sample.ttft is not None:
        fire(request_type="TTFT", name="chat", response_time=sample.ttft * 1000, response_length=0, exception=None)
    if sample.tpot is not None:
        fire(request_type="TPOT", name="chat", response_time=sample.tpot * 1000, response_length=0, exception=None)
    if environment.parsed_options is not None and environment.parsed_options.no_itl_events:
        return
    for gap in sample.itl:
        fire(request_type="ITL", name="chat", response_time=gap * 1000, response_length=0, exception=None)


class ChatUser(FastHttpUser):
    """Streams R1 chat completions one after another (closed loop), or on the Poisson schedule (--rate)."""

    network_timeout = 600.0  # a long reasoning answer streams for minutes
    connection_timeout = 10.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None
        self.headers = {"Content-Type": "application/json"}
        if options.api_key:
            self.headers["Authorization"] = f"Bearer {options.api_key}"
        self.max_tokens = options.max_tokens
        self.open_loop = options.rate > 0 or bool(getattr(options, "step_rates", ""))
        if self.open_loop:
            seed = (
                options.seed
                if options.seed < 0
                else options.seed + (getattr(self.environment.runner, "worker_index", 0) or 0)
            )
            ARRIVALS.start(None if seed < 0 else seed)
        self.model = options.model

    def _first_model(self) -> str:
        """The first model of GET /v1/models; a target that has none ends the run with one clear line."""
        with self.client.get("/v1/models", headers=self.headers, catch_response=True) as resp:
            try:
                return str(resp.json()["data"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                why = f"GET {self.host}/v1/models answered {resp.status_code or resp.error}: no model id"
                resp.failure(why)
        log.error("%s; check --host (and --api-key), or pass --model. Stopping.", why)
        runner, options = self.environment.runner, self.environment.parsed_options
        assert runner is not None and options is not None
        gevent.spawn(runner.quit if options.headless else runner.stop)
        raise StopUser()

    def wait_time(self) -> float:
        return 0.0  # closed loop sends again at once; open loop waits for its arrival inside the task

    @task
    def chat(self) -> None:
        if (self.open_loop and not ARRIVALS.take()) or state["draining"]:
            gevent.sleep(1.0)  # the run is stopping: send nothing new
            return
        if not self.model:
            with MODEL_LOOKUP:  # one GET /v1/models per process, not one per user
                if state["model"] is None:
                    state["model"] = self._first_model()
            self.model = state["model"]
        prompt = next(state["cycle"])
        state["in_flight"] += 1
        try:
            self._send(prompt)
        finally:
            state["in_flight"] -= 1

    def _send(self, prompt: prompts.Prompt) -> None:
        payload: Any = chat.request_body(self.model, prompt, self.max_tokens)  # Locust's annotation says str
        request_id = uuid.uuid4().hex
        headers = {**self.headers, "X-Request-Id": request_id}
        wall, sent = time.time(), time.perf_counter()
        timing = StreamTiming(sent)
        scanner = SSEScanner(timing.on_chunk, strip_usage=False)
        error: str | None = None
        with self.client.post(chat.PATH, data=payload, headers=headers, stream=True, catch_response=True) as resp:
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}: {(resp.text or str(resp.error))[:200]}"
            else:
                error = chat.read_stream(resp.stream.readline, scanner)
            e2e = time.perf_counter() - sent
            resp.request_meta["response_time"] = e2e * 1000  # the POST row is end-to-end, not time to headers
            kind = timing.answer_kind() if error is None else None
            options = self.environment.parsed_options
            empty = kind is not None and is_empty(kind, bool(options and options.accept_reasoning_only))
            if error:
                resp.failure(error)
            elif empty:
                resp.failure(f"empty response: {kind}")
            else:
                resp.success()
        _record(self.environment, Sample(
            start=wall, e2e=e2e, ok=error is None, ttft=timing.ttft, tpot=timing.tpot(e2e), itl=timing.itl,
            output_tokens=timing.output_tokens, empty=empty, answer_kind=kind or "", error=error, prompt=prompt.id,
            request_id=request_id,
        ))  # fmt: skip
