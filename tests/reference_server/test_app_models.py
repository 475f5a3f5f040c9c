"""The model lifecycle over HTTP: listing the catalog, JIT loads on every surface, leases held while answering."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from reference_server.app import create_app
from reference_server.embedded import run_app
from reference_server.engine import Backend, Engine
from reference_server.model import LlamaSettings
from reference_server.models import Models, engine_loader
from tests.reference_server.conftest import EngineWrapper

JIT = "smollm2-jit"
HELLO = [{"role": "user", "content": "Say hello."}]
GREEDY = {"temperature": 0, "seed": 7}
DEADLINE_S = 120.0  # generous: the tests wait for events, never for a duration


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _with_unload_route(app: FastAPI, models: Models) -> FastAPI:
    """A test-only route that unloads a model on the server's loop (the /api/v1 unload route is another module's)."""

    @app.post("/test/unload/{key}")
    async def unload(key: str) -> dict[str, str]:
        await models.unload(key)
        return {"unloaded": key}

    return app


@pytest.fixture
def real_models(jit_models_dir: Path, reference_engine: Engine) -> Iterator[Models]:
    """The session engine at start-up, plus smollm2-jit really loaded (one thread) when a request names it."""
    models = Models(models_dir=jit_models_dir, loader=engine_loader(LlamaSettings(n_threads=1)), context_length=512)
    models.adopt(reference_engine, owned=False)
    yield models
    models.close()


@pytest.fixture
def real_server(real_models: Models) -> Iterator[str]:
    with run_app(_with_unload_route(create_app(real_models), real_models)) as url:
        yield url


def _leases(models: Models, key: str) -> int:
    instance = models.instance(key)
    return instance.leases if instance is not None else 0


def test_v1_models_lists_every_catalog_entry(real_server: str, reference_engine: Engine) -> None:
    with httpx.Client(base_url=real_server, timeout=DEADLINE_S) as client:
        ids = [row["id"] for row in client.get("/v1/models").json()["data"]]
        assert reference_engine.info.id in ids
        assert JIT in ids
        row = client.get(f"/v1/models/local/{JIT}").json()
        assert (row["id"], row["object"], row["owned_by"]) == (JIT, "model", "local")
        missing = client.get("/v1/models/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"


def test_a_request_jit_loads_its_model_and_an_unload_mid_stream_lets_the_stream_finish(
    real_server: str, real_models: Models
) -> None:
    with httpx.Client(base_url=real_server, timeout=DEADLINE_S) as client:
        assert real_models.state(JIT) == "not-loaded"
        answer = client.post("/v1/chat/completions", json={"model": JIT, "messages": HELLO, "max_tokens": 4, **GREEDY})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == JIT
        instance = real_models.instance(JIT)
        assert instance is not None
        assert instance.jit
        assert instance.context_length == 512
        _wait_for(lambda: _leases(real_models, JIT) == 0, "the lease to be released")
        body = {"model": JIT, "messages": HELLO, "max_tokens": 40, "stream": True, **GREEDY}
        with client.stream("POST", "/v1/chat/completions", json=body) as stream:
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["model"] == JIT
            assert _leases(real_models, JIT) == 1
            unloaded = client.post(f"/test/unload/{JIT}")
            assert unloaded.status_code == 200
            assert real_models.state(JIT) == "not-loaded"
            rest = [line[6:] for line in lines if line.startswith("data: ")]
        assert rest[-1] == "[DONE]"
        chunks = [json.loads(data) for data in rest[:-1]]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] in ("stop", "length")
        again = client.post("/v1/completions", json={"model": JIT, "prompt": "Hi", "max_tokens": 2, **GREEDY})
        assert again.status_code == 200, again.text
        assert real_models.state(JIT) == "loaded"
        assert real_models.instance(JIT) is not instance


def test_every_surface_leases_the_model_it_names_and_gives_it_back(real_server: str, real_models: Models) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"messages": HELLO, "max_tokens": 2}),
        ("/v1/completions", {"prompt": "Hi", "max_tokens": 2}),
        ("/v1/embeddings", {"input": "hello"}),
        ("/v1/messages", {"messages": HELLO, "max_tokens": 2}),
        ("/v1/messages/count_tokens", {"messages": HELLO}),
        ("/v1/responses", {"input": "Hi", "max_output_tokens": 2, "store": False}),
        ("/api/v0/chat/completions", {"messages": HELLO, "max_tokens": 2}),
        ("/api/v0/completions", {"prompt": "Hi", "max_tokens": 2}),
        ("/api/v0/embeddings", {"input": "hello"}),
    ]
    with httpx.Client(base_url=real_server, timeout=DEADLINE_S) as client:
        for path, body in requests:
            if real_models.state(JIT) == "loaded":
                client.post(f"/test/unload/{JIT}")
            answer = client.post(path, json={"model": JIT, **body, **GREEDY, "ttl": 600})
            assert answer.status_code == 200, f"{path}: {answer.text}"
            instance = real_models.instance(JIT)
            assert instance is not None, path
            assert instance.ttl == 600, path
            _wait_for(lambda: _leases(real_models, JIT) == 0, f"{path} to release its lease")


def test_a_stream_the_client_abandons_releases_its_lease(real_server: str, real_models: Models) -> None:
    body = {"model": JIT, "messages": HELLO, "max_tokens": 200, "stream": True, **GREEDY}
    with httpx.Client(base_url=real_server, timeout=DEADLINE_S) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as stream:
            next(stream.iter_lines())
            assert _leases(real_models, JIT) == 1
        _wait_for(lambda: _leases(real_models, JIT) == 0, "the abandoned stream to release its lease")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": HELLO}),
        ("/v1/completions", {"prompt": "Hi"}),
        ("/v1/embeddings", {"input": "hi"}),
        ("/v1/messages", {"model": "m", "messages": HELLO, "max_tokens": 2}),
        ("/v1/messages/count_tokens", {"model": "m", "messages": HELLO}),
        ("/v1/responses", {"input": "Hi"}),
    ],
)
@pytest.mark.parametrize("ttl", [0, -5, "soon"])
def test_a_ttl_that_is_not_a_positive_number_is_a_400_naming_it(
    reference_base_url: str, path: str, body: dict[str, Any], ttl: object
) -> None:
    answer = httpx.post(f"{reference_base_url}{path}", json={**body, "ttl": ttl, "max_tokens": 2}, timeout=DEADLINE_S)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "ttl" in error["message"]
    if path != "/v1/messages" and not path.startswith("/v1/messages/"):
        assert error["param"] == "ttl"


def test_loading_one_model_does_not_hold_up_a_request_to_a_loaded_one(
    jit_models_dir: Path, reference_engine: Engine
) -> None:
    gate = threading.Event()
    loads: list[str] = []

    def gated(path: Path, context_length: int) -> Backend:
        loads.append(path.name)
        assert gate.wait(DEADLINE_S), "the test never opened the gate"
        return EngineWrapper(reference_engine, replace(reference_engine.info, id=JIT, path=path))

    models = Models(models_dir=jit_models_dir, loader=gated)
    models.adopt(reference_engine, owned=False)
    outcome: dict[str, httpx.Response] = {}
    with run_app(create_app(models)) as url, httpx.Client(base_url=url, timeout=DEADLINE_S) as client:

        def ask_jit() -> None:
            outcome["jit"] = client.post("/v1/completions", json={"model": JIT, "prompt": "Hi", "max_tokens": 2})

        waiting = threading.Thread(target=ask_jit)
        waiting.start()
        _wait_for(lambda: bool(loads), "the JIT load to start")
        loaded = client.post(
            "/v1/completions",
            json={"model": reference_engine.info.id, "prompt": "Hi", "max_tokens": 2, **GREEDY},
        )
        assert loaded.status_code == 200  # answered while the other model's load is stuck
        assert waiting.is_alive()
        assert "jit" not in outcome
        gate.set()
        waiting.join(DEADLINE_S)
    assert outcome["jit"].status_code == 200
    assert outcome["jit"].json()["model"] == JIT
    models.close()
