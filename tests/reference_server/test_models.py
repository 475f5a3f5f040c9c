"""The model registry: catalog from GGUF headers, JIT loading, idle TTL, auto-evict, unload under load."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from reference_server.engine import Backend, Embeddings, Engine, Generation, GenerationRequest
from reference_server.errors import ApiError
from reference_server.model import ModelInfo, default_model_path
from reference_server.models import LoadObserver, Models, read_metadata, wheel_models

DEADLINE_S = 60.0  # generous: polls end as soon as the condition holds


class FakeBackend:
    """A Backend surface without a model: enough for the registry, which never generates."""

    def __init__(self, path: Path, n_ctx: int) -> None:
        key = path.name.removesuffix(".gguf").removesuffix(".Q4_1").lower()
        self.info = ModelInfo(
            id=key, path=path, arch="llama", publisher="test", quantization="Q4_1", max_context_length=8192, created=0
        )
        self.template: Any = None
        self._n_ctx = n_ctx
        self.closed = threading.Event()

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def generate(self, request: GenerationRequest) -> Generation:
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        raise NotImplementedError

    def close(self) -> None:
        self.closed.set()


class Loader:
    """Loads FakeBackends, counting loads; a key in `gates` waits for its event before loading."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.backends: list[FakeBackend] = []

    def __call__(self, path: Path, context_length: int) -> Backend:
        backend = FakeBackend(path, context_length)
        gate = self.gates.get(backend.info.id)
        if gate is not None:
            assert gate.wait(DEADLINE_S), "the test never opened the gate"
        self.loads.append(backend.info.id)
        self.backends.append(backend)
        return backend


def _models_dir(tmp_path: Path, *names: str) -> Path:
    """A models directory with a SmolLM2 symlink per name, LM Studio's layout: local/<name>/<Name>.Q4_1.gguf."""
    for name in names:
        target = tmp_path / "local" / name / f"{name}.Q4_1.gguf"
        target.parent.mkdir(parents=True)
        target.symlink_to(default_model_path())
    return tmp_path


def _registry(tmp_path: Path, *names: str, **options: Any) -> tuple[Models, Loader]:
    loader = Loader()
    models = Models(models_dir=_models_dir(tmp_path, *names), wheels=False, loader=loader, **options)
    return models, loader


def _run[T](work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(work())


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# ---- catalog ----


def test_the_catalog_reads_wheel_and_directory_models_from_their_headers(jit_models_dir: Path) -> None:
    assert default_model_path() in wheel_models()
    models = Models(models_dir=jit_models_dir)
    keys = [entry.key for entry in models.entries()]
    assert "smollm2-135m-instruct" in keys
    entry = models.entry("smollm2-jit")
    assert entry.type == "llm"
    assert entry.info.publisher == "local"  # the directory layout names the publisher
    assert entry.info.arch == "llama"
    assert entry.info.quantization == "Q4_1"
    assert entry.info.max_context_length == 8192
    assert entry.params_string == "135M"
    assert entry.size_bytes == default_model_path().stat().st_size
    assert models.entry("local/smollm2-jit") is entry
    assert models.entry("SmolLM2-JIT.Q4_1.gguf") is entry
    assert models.state("smollm2-jit") == "not-loaded"
    assert models.instances() == []


def test_an_unknown_model_is_a_404_naming_it(tmp_path: Path) -> None:
    models, _ = _registry(tmp_path, "alpha")
    with pytest.raises(ApiError) as caught:
        models.entry("nope", param="draft_model")
    assert (caught.value.status, caught.value.code, caught.value.param) == (404, "model_not_found", "draft_model")
    assert "'nope'" in caught.value.message


def test_a_request_finds_a_model_added_to_the_directory(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")
    _models_dir(tmp_path, "beta")
    with pytest.raises(ApiError):
        models.entry("beta")  # not scanned yet

    async def work() -> None:
        (await models.acquire("beta")).release()  # a miss reads the directory again

    _run(work)
    assert loader.loads == ["beta"]
    assert models.entry("beta").key == "beta"


def test_a_manual_load_of_a_jit_loaded_model_makes_it_manual(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha", "beta")

    async def work() -> None:
        (await models.acquire("alpha", ttl=5)).release()
        instance = await models.load("alpha")
        assert models.instance("alpha") is instance
        assert (instance.jit, instance.ttl, instance._idle_timer) == (False, None, None)
        (await models.acquire("beta")).release()  # auto-evict leaves alpha alone now
        assert models.state("alpha") == "loaded"

    _run(work)
    assert loader.loads == ["alpha", "beta"]


def test_metadata_is_read_without_loading_weights() -> None:
    metadata = read_metadata(default_model_path())
    assert metadata["general.architecture"] == "llama"
    assert "tokenizer.ggml.tokens" not in metadata or len(metadata["tokenizer.ggml.tokens"]) <= 512


# ---- JIT, TTL, auto-evict ----


def test_a_request_naming_a_model_that_is_not_loaded_loads_it(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha", default_ttl=600)

    async def work() -> None:
        lease = await models.acquire("alpha")
        assert lease.model == "alpha"
        assert lease.load_seconds is not None
        instance = models.instance("alpha")
        assert instance is not None
        assert instance is lease.instance
        assert (instance.jit, instance.ttl, instance.context_length) == (True, 600, 2048)
        assert models.state("alpha") == "loaded"
        again = await models.acquire("local/alpha")
        assert again.load_seconds is None  # already loaded: this request did not wait for a load
        lease.release()
        again.release()
        lease.release()  # idempotent
        assert instance.leases == 0

    _run(work)
    assert loader.loads == ["alpha"]


def test_ttl_unloads_after_idle_and_closes_the_engine(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")

    async def work() -> None:
        lease = await models.acquire("alpha", ttl=0.2)
        assert lease.instance.ttl == 0.2
        lease.release()
        await _until(lambda: models.state("alpha") == "not-loaded", "the TTL unload")
        await _until(loader.backends[0].closed.is_set, "the engine to close")
        again = await models.acquire("alpha")  # the next request loads it again
        assert again.load_seconds is not None
        again.release()

    _run(work)
    assert loader.loads == ["alpha", "alpha"]


def test_a_held_lease_keeps_the_model_loaded_past_its_ttl(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")

    async def work() -> None:
        lease = await models.acquire("alpha", ttl=0.05)
        await asyncio.sleep(0.5)  # ten TTLs, while the lease is held
        assert models.state("alpha") == "loaded"
        assert not loader.backends[0].closed.is_set()
        lease.release()
        await _until(lambda: models.state("alpha") == "not-loaded", "the TTL unload after release")

    _run(work)


def test_use_restarts_the_idle_timer(tmp_path: Path) -> None:
    models, _ = _registry(tmp_path, "alpha")

    async def work() -> None:
        (await models.acquire("alpha", ttl=300)).release()
        instance = models.instance("alpha")
        assert instance is not None
        first = instance._idle_timer
        assert first is not None
        await asyncio.sleep(0.01)
        lease = await models.acquire("alpha")
        assert first.cancelled()  # in use: no timer runs
        assert instance._idle_timer is None
        lease.release()
        second = instance._idle_timer
        assert second is not None
        assert second.when() > first.when()

    _run(work)


def test_the_request_ttl_applies_only_to_the_load_it_triggers(tmp_path: Path) -> None:
    models, _ = _registry(tmp_path, "alpha", default_ttl=900)

    async def work() -> None:
        (await models.acquire("alpha")).release()
        (await models.acquire("alpha", ttl=1)).release()
        instance = models.instance("alpha")
        assert instance is not None
        assert instance.ttl == 900

    _run(work)


def test_auto_evict_unloads_the_least_recently_used_jit_model(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha", "beta", "gamma", max_jit_models=2)

    async def work() -> None:
        (await models.acquire("alpha")).release()
        (await models.acquire("beta")).release()
        (await models.acquire("alpha")).release()  # alpha used more recently than beta
        (await models.acquire("gamma")).release()
        assert [i.id for i in models.instances()] == ["alpha", "gamma"]
        await _until(loader.backends[1].closed.is_set, "beta's engine to close")

    _run(work)


def test_auto_evict_spares_manual_loads_and_held_models(tmp_path: Path) -> None:
    models, _ = _registry(tmp_path, "alpha", "beta", "gamma")

    async def work() -> None:
        manual = await models.load("gamma")
        assert (manual.jit, manual.ttl) == (False, None)
        held = await models.acquire("alpha")
        (await models.acquire("beta")).release()
        assert sorted(i.id for i in models.instances()) == ["alpha", "beta", "gamma"]  # alpha is held
        held.release()  # now alpha, the older JIT model, goes
        assert sorted(i.id for i in models.instances()) == ["beta", "gamma"]

    _run(work)


def test_concurrent_requests_for_an_unloaded_model_load_it_once(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")
    loader.gates["alpha"] = gate = threading.Event()

    async def work() -> None:
        waiting = [asyncio.ensure_future(models.acquire("alpha")) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in waiting)
        gate.set()
        leases = await asyncio.gather(*waiting)
        assert len({id(lease.instance) for lease in leases}) == 1
        assert lease_counts(models) == {"alpha": 3}
        for lease in leases:
            lease.release()

    _run(work)
    assert loader.loads == ["alpha"]


def lease_counts(models: Models) -> dict[str, int]:
    return {instance.id: instance.leases for instance in models.instances()}


def test_loading_one_model_does_not_block_requests_to_another(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha", "beta", max_jit_models=2)
    loader.gates["beta"] = gate = threading.Event()

    async def work() -> None:
        (await models.acquire("alpha")).release()
        loading = asyncio.ensure_future(models.acquire("beta"))
        await asyncio.sleep(0.05)
        assert not loading.done()
        lease = await asyncio.wait_for(models.acquire("alpha"), DEADLINE_S)  # while beta's load is stuck
        assert models.state("beta") == "not-loaded"
        lease.release()
        gate.set()
        (await loading).release()
        assert models.state("beta") == "loaded"

    _run(work)


def test_unload_waits_for_held_leases_before_closing(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")

    async def work() -> None:
        lease = await models.acquire("alpha")
        await models.unload("alpha")
        assert models.state("alpha") == "not-loaded"  # gone from the registry at once
        await asyncio.sleep(0.1)
        assert not loader.backends[0].closed.is_set()  # but its engine serves the lease to the end
        fresh = await models.acquire("alpha")  # a new request loads it again
        assert fresh.instance is not lease.instance
        lease.release()
        await _until(loader.backends[0].closed.is_set, "the old engine to close")
        assert not loader.backends[1].closed.is_set()
        fresh.release()
        with pytest.raises(ApiError) as caught:
            await models.unload("nope")
        assert (caught.value.status, caught.value.code) == (404, "model_not_found")

    _run(work)


def test_a_failed_load_is_a_500_and_the_next_request_tries_again(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")
    calls: list[int] = []

    def failing(path: Path, context_length: int) -> Backend:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("Failed to load model from file")
        return loader(path, context_length)

    models._loader = failing

    async def work() -> None:
        with pytest.raises(ApiError) as caught:
            await models.acquire("alpha")
        assert caught.value.status == 500
        assert "alpha" in caught.value.message
        assert "Failed to load" in caught.value.message
        (await models.acquire("alpha")).release()

    _run(work)
    assert len(calls) == 2


def test_no_model_named_picks_the_one_loaded_llm_else_the_startup_model(
    tmp_path: Path, reference_engine: Engine
) -> None:
    models, _ = _registry(tmp_path, "alpha", max_jit_models=2)
    models.adopt(reference_engine, owned=False)

    async def work() -> None:
        lease = await models.acquire(None)
        assert lease.model == reference_engine.info.id
        lease.release()
        (await models.acquire("alpha")).release()
        lease = await models.acquire(None)  # two loaded: the start-up model
        assert lease.model == reference_engine.info.id
        lease.release()

    _run(work)
    models.close()


def test_close_closes_only_the_engines_the_registry_loaded(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")
    shared = FakeBackend(tmp_path / "shared.gguf", 512)
    models.adopt(shared, owned=False)

    async def work() -> None:
        (await models.acquire("alpha")).release()

    _run(work)
    models.close()
    assert loader.backends[0].closed.is_set()
    assert not shared.closed.is_set()
    assert models.instances() == []


def test_serving_wraps_one_backend(reference_engine: Engine) -> None:
    models = Models.serving(reference_engine)
    assert [entry.key for entry in models.entries()] == [reference_engine.info.id]
    instance = models.instance(reference_engine.info.id)
    assert instance is not None
    assert not instance.jit
    assert not instance.owned
    assert instance.entry.info == reference_engine.info


def test_a_jit_load_whose_request_left_still_unloads_after_its_ttl(tmp_path: Path) -> None:
    models, loader = _registry(tmp_path, "alpha")
    loader.gates["alpha"] = gate = threading.Event()

    async def work() -> None:
        waiting = asyncio.ensure_future(models.acquire("alpha", ttl=0.1))
        await asyncio.sleep(0.05)
        waiting.cancel()  # the client went away during the load
        gate.set()
        await _until(lambda: models.state("alpha") == "loaded", "the load to finish anyway")
        await _until(lambda: models.state("alpha") == "not-loaded", "the unload of a model nobody holds")

    _run(work)


class _Events(LoadObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, key: str) -> None:
        self.seen.append(("started", key))

    def ended(self, key: str, seconds: float) -> None:  # no progress(): every method is optional
        assert seconds >= 0
        self.seen.append(("ended", key))


def test_an_observer_hears_about_the_load_its_request_waits_for(tmp_path: Path) -> None:
    models, _ = _registry(tmp_path, "alpha")
    first, second = _Events(), _Events()

    async def work() -> None:
        (await models.acquire("alpha", observer=first)).release()
        (await models.acquire("alpha", observer=second)).release()  # loaded: nothing to hear

    _run(work)
    assert first.seen == [("started", "alpha"), ("ended", "alpha")]
    assert second.seen == []
