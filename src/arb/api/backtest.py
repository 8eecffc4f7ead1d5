"""`POST /api/v1/backtest/run` and `GET /api/v1/backtest/{id}`: backtest jobs, run as `arb backtest` child processes.

Why a child process per job: a replay is CPU-bound for seconds to minutes; in the API's event loop it would stall
every request. The child is the same `arb backtest arbitrage --json` a user runs, so a job's result is exactly the
CLI's. At most `api.max_backtest_jobs` run at once (each takes a core; past it: 429), a request names a tape by its
folder under `api.tapes_dir` (never a path or URL: FAULTS S11) and at most `api.max_backtest_latencies` latency
settings (S7). Jobs are owned by the key that started them (S3) through the ledger's `api_requests`, where their
final state is kept; progress is the child's own (`replay: done/total entries` on its stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam

from arb import tasks
from arb.api.auth import Principal, owned, requires
from arb.api.problems import Problem, invalid
from arb.api.schemas import REF_PATTERN, BacktestIn, JobOut, request_digest
from arb.api.state import state
from arb.ledger.api import ApiStore

log = logging.getLogger(__name__)
router = APIRouter(prefix="/backtest", tags=["backtest"])
_PROGRESS: Final = re.compile(rb"replay: (\d+)/(\d+) entries")


class Job(msgspec.Struct, kw_only=True):
    job_id: str
    type: str
    request_id: int
    status: str = "queued"
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None


class Jobs:
    """The API process's running jobs (the ledger keeps finished ones)."""

    def __init__(self, store: ApiStore, *, limit: int, config_path: str | None) -> None:
        self._store = store
        self._limit = limit
        self._config = config_path
        self.running: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def busy(self) -> bool:
        return len(self.running) >= self._limit  # a job leaves `running` when it ends

    def start(self, job: Job, tape: Path, latency_ms: list[float]) -> None:
        self.running[job.job_id] = job
        task = tasks.spawn(self._run(job, tape, latency_ms), name=f"backtest-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job, tape: Path, latency_ms: list[float]) -> None:
        job.status = "running"
        out_dir = Path(tempfile.mkdtemp(prefix=f"arb-backtest-{job.job_id}-"))
        args = [
            sys.executable,
            "-m",
            "arb",
            "backtest",
            "arbitrage",
            "--data",
            str(tape),
            "--json",
            "--out",
            str(out_dir),
        ]
        for ms in latency_ms:
            args += ["--latency-ms", repr(ms)]
        if self._config:
            args += ["--config", self._config]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stderr_tail: list[bytes] = []

        async def follow() -> None:
            if proc.stderr is None:
                return
            async for line in proc.stderr:
                stderr_tail[:] = [*stderr_tail[-20:], line]
                m = _PROGRESS.search(line)
                if m and int(m.group(2)):
                    job.progress = min(0.99, int(m.group(1)) / int(m.group(2)) / max(1, len(latency_ms)))

        try:
            follower = tasks.spawn(follow(), name=f"backtest-{job.job_id}-stderr", report=False)
            stdout = await proc.stdout.read() if proc.stdout is not None else b""
            await proc.wait()
            await follower
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        lines = [ln for ln in stdout.decode(errors="replace").splitlines() if ln.strip()]
        if proc.returncode == 0 and lines:
            try:
                job.result = msgspec.json.decode(lines[-1])
                job.status, job.progress = "done", 1.0
            except msgspec.DecodeError:
                job.status, job.error = "failed", "the backtest printed no JSON result"
        else:
            tail = b"".join(stderr_tail[-3:]).decode(errors="replace").strip()
            job.status, job.error = "failed", f"the backtest exited {proc.returncode}: {tail[-500:]}"
        log.info("api.backtest_finished job=%s status=%s", job.job_id, job.status)
        try:
            await self._store.finish_request(job.request_id, status=job.status, result=_job_dict(job))
        finally:
            self.running.pop(job.job_id, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            await tasks.cancel_and_wait(task)


def _job_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "type": job.type,
        "status": job.status,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
    }


def _tape_path(tapes_dir: str, name: str) -> tuple[Path, Path]:
    root = Path(tapes_dir).resolve()
    return root, (root / name).resolve()


@router.post("/run", response_model=JobOut, status_code=202, summary="Start a backtest job (trade scope)")
async def run(
    request: Request,
    body: BacktestIn,
    principal: Annotated[Principal, Depends(requires("trade"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", pattern=REF_PATTERN)] = None,
) -> JobOut:
    s = state(request)
    if body.type == "directional":
        raise Problem(503, "directional backtests need the directional layer, which this server does not have yet")
    if len(body.latency_ms) > s.settings.api.max_backtest_latencies:
        raise invalid("body.latency_ms", f"at most {s.settings.api.max_backtest_latencies} latency settings per job",
                      "too many latency settings")  # fmt: skip
    root, tape = _tape_path(s.settings.api.tapes_dir, body.tape)
    if tape.parent != root or not (tape / "manifest.json").is_file():
        raise invalid("body.tape", f"no tape {body.tape!r} in the server's tapes directory", "unknown tape")
    if s.jobs.busy():
        raise Problem(
            429,
            f"{s.settings.api.max_backtest_jobs} backtests are running; retry when one ends",
            headers={"Retry-After": "10"},
        )
    job_id = secrets.token_hex(8)
    digest = request_digest(body)
    record, created = await s.store.begin_request(
        principal.key_id, "backtest", idempotency_key or job_id, digest, resource_id=job_id, status="queued"
    )
    if not created:
        return await get(request, record.resource_id, principal)
    job = Job(job_id=job_id, type=body.type, request_id=record.id)
    s.jobs.start(job, tape, list(body.latency_ms))
    return JobOut(**_job_dict(job))


@router.get("/{job_id}", response_model=JobOut, summary="A backtest job's progress and result")
async def get(
    request: Request,
    job_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")],
    principal: Annotated[Principal, Depends(requires("read"))],
) -> JobOut:
    s = state(request)
    owner = await owned(request, principal, "backtest", job_id, "backtest job")
    if owner is None:
        raise Problem(404, f"no backtest job {job_id!r} for this key")
    live = s.jobs.running.get(job_id)
    if live is not None:
        return JobOut(**_job_dict(live))
    if owner.status in ("queued", "running"):  # started by a replica (or a process) that is gone
        return JobOut(
            job_id=job_id,
            type="arbitrage",
            status="failed",
            progress=0.0,
            error="the API process running this job stopped before it ended",
        )
    return JobOut(**owner.result)
