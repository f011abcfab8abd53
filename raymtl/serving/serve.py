"""`raymtl serve`: the models of a RUN behind an HTTP endpoint, on Ray Serve.

One deployment (`PredictDeployment`, FastAPI ingress) per application; each replica loads the
models once (the same `ModelSet` as `raymtl predict`). A request's audio is read, checked and
featurized in a worker thread; then its patches join a `serve.batch` with the other requests
in flight, and every network runs once over the patches of the whole batch. The answer is
`raymtl predict`'s JSON document with one file in it.

Endpoints (all JSON):

    POST /predict   the audio, either as the raw request body (Content-Type audio/wav,
                    audio/flac, application/octet-stream ...) or as multipart/form-data with
                    the file in the field `file`; query `top_k` (default: the server's) and,
                    for a raw body, `name` (echoed back as the file's name, never used as a path)
    GET  /ready     200 once the replica has loaded the models
    GET  /          the model, the class names, the limits and the endpoints

Errors: 400 empty upload or no `file` field; 413 upload larger than the size limit (the
Content-Length header is checked before reading, the body is counted while reading); 422 not
audio (unreadable, corrupt, truncated, more than 2 channels) or longer than the duration limit;
the body is {"error": reason, "status": code}.

Bound to 127.0.0.1 unless told otherwise; no file paths are taken from requests (an upload goes
to a fresh temporary file that is deleted after the answer).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations
# (`request: Request`) at run time, and Ray Serve's class-based ingress cannot resolve strings.
import asyncio
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from raymtl.errors import AudioError, UserError
from raymtl.ray_session import ensure_ray
from raymtl.serving.models import MODEL_KINDS, ensemble_members, load_models, read_run, select_mtl
from raymtl.serving.predict import DEFAULT_TOP_K, Featurizer, TooLongError, answer, document

log = logging.getLogger(__name__)

APP_NAME = "raymtl"
FILE_FIELD = "file"
_NAME_MAX = 200  # characters of a file name echoed back
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ServeOptions:
    """How the endpoint answers, and its limits."""

    model: str = "mtl"  # mtl | ensemble, as `raymtl predict --model`
    mtl_target: str = "asc"
    trial: str | None = None
    top_k: int = DEFAULT_TOP_K
    # 32 MiB holds 2 minutes of 48 kHz 24-bit stereo WAV (34.6 MB would not): the duration
    # limit below, not the size, is the one a real upload meets first.
    max_upload_bytes: int = 32 * 2**20
    max_duration_s: float = 120.0
    max_batch_size: int = 8  # requests per serve.batch
    batch_wait_timeout_s: float = 0.01  # how long a batch waits to fill
    replicas: int = 1
    num_cpus: float = 1.0  # per replica (torch uses as many threads)
    max_ongoing_requests: int = 16  # per replica; the rest queue in the proxy

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise UserError(f"--top-k must be at least 1, got {self.top_k}")
        if self.max_upload_bytes < 1 or self.max_duration_s <= 0:
            raise UserError("the upload size and duration limits must be positive")
        if self.max_batch_size < 1 or self.replicas < 1 or self.max_ongoing_requests < 1:
            raise UserError("--max-batch-size, --replicas and max ongoing requests must be at least 1")


class HTTPError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason, "status": status}, status_code=status)


def _safe_name(name: str | None) -> str:
    """The upload's own name, for echoing back only: its last path component, printable."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = "".join(ch for ch in base if ch.isprintable())[:_NAME_MAX]
    return base or "upload"


# No interactive docs: their pages load scripts from a CDN, and the endpoints are listed at GET /.
app = FastAPI(title="raymtl", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(name="PredictDeployment")
@serve.ingress(app)
class PredictDeployment:
    def __init__(self, run: str, options: dict[str, Any]):

        torch.set_num_threads(max(1, int(options.get("num_cpus") or 1)))
        self.options = ServeOptions(**options)
        o = self.options
        self.models = load_models(run, o.model, mtl_target=o.mtl_target, trial=o.trial)
        self.featurizer = Featurizer(self.models.features, self.models.scene_images)
        self.model_info = self.models.describe()
        self.score_batch.set_max_batch_size(o.max_batch_size)
        self.score_batch.set_batch_wait_timeout_s(o.batch_wait_timeout_s)
        self.stats = {"requests": 0, "answered": 0, "batches": 0, "batched_requests": 0, "max_batch": 0}

    # ------------------------------------------------------------ endpoints

    @app.get("/ready")
    def ready(self) -> dict[str, Any]:
        return {"ready": True, "model": self.model_info["kind"]}

    @app.get("/")
    def info(self) -> dict[str, Any]:
        o = self.options
        return {
            "service": "raymtl predict",
            "model": self.model_info,
            "class_names": {
                "scene": self.models.class_names["asc"],
                "events": self.models.class_names["aec"],
            },
            "limits": {
                "max_upload_bytes": o.max_upload_bytes,
                "max_duration_s": o.max_duration_s,
                "max_batch_size": o.max_batch_size,
            },
            "top_k": o.top_k,
            "endpoints": {
                "POST /predict": "audio as the body or as multipart field 'file'; ?top_k=N; ?name=NAME",
                "GET /ready": "200 when the models are loaded",
                "GET /stats": "requests answered and batch sizes",
            },
            "stats": self.stats,
        }

    @app.get("/stats")
    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)

    @app.post("/predict")
    async def predict(self, request: Request):
        self.stats["requests"] += 1
        try:
            top_k = self._top_k(request)
            data = await self._read_body(request)
            name, audio = await self._extract(request, data)
            record = await self._answer(audio, name, top_k)
        except HTTPError as e:
            return _error(e.status, e.reason)
        self.stats["answered"] += 1
        return JSONResponse(document(self.model_info, [record], top_k))

    # ------------------------------------------------------------ the request

    def _top_k(self, request: Request) -> int:
        text = request.query_params.get("top_k")
        if text is None:
            return min(self.options.top_k, self.models.n_classes["aec"])
        try:
            k = int(text)
        except ValueError:
            raise HTTPError(400, f"top_k must be an integer, got {text!r}") from None
        if not 1 <= k <= self.models.n_classes["aec"]:
            raise HTTPError(400, f"top_k must be in 1..{self.models.n_classes['aec']}, got {k}")
        return k

    async def _read_body(self, request: Request) -> bytes:
        limit = self.options.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"upload of {int(declared)} bytes is larger than the limit of {limit} bytes")
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a chunked upload without Content-Length
                raise HTTPError(413, f"upload larger than the limit of {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def _extract(self, request: Request, data: bytes) -> tuple[str, bytes]:
        """(the file's name, its bytes) from a raw body or a multipart form."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):

            async def body():
                yield data

            try:
                form = await MultiPartParser(request.headers, body(), max_files=1, max_fields=16).parse()
            except MultiPartException as e:
                raise HTTPError(400, f"malformed multipart upload ({e.message})") from None
            upload = form.get(FILE_FIELD)
            if not isinstance(upload, UploadFile):
                raise HTTPError(400, f"multipart upload without a file in the field {FILE_FIELD!r}")
            audio = await upload.read()
            name = _safe_name(upload.filename)
        else:
            audio, name = data, _safe_name(request.query_params.get("name"))
        if not audio:
            raise HTTPError(400, "empty upload (0 bytes of audio)")
        return name, audio

    async def _answer(self, audio: bytes, name: str, top_k: int) -> dict[str, Any]:
        # The upload goes to a fresh temporary file: read_audio checks a WAV's header against its
        # data, which needs a file, and predict and serve then read audio the same way.
        fd, path = tempfile.mkstemp(prefix="raymtl-upload-", suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(audio)
            rec, sets = await asyncio.to_thread(self._featurize, path, name)
        except TooLongError as e:
            raise HTTPError(422, f"{name}: {e.reason}") from None
        except AudioError as e:
            raise HTTPError(422, f"{name}: not usable audio: {e.reason}") from None
        finally:
            os.unlink(path)
        scores = await self.score_batch(sets)
        return answer(rec, sets, scores, self.models.class_names, top_k)

    def _featurize(self, path: str, name: str):
        rec = self.featurizer.load(path, name, self.options.max_duration_s)
        return rec, self.featurizer.patch_sets(rec)

    # ------------------------------------------------------------ the batched model

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def score_batch(self, requests: list[list]) -> list[list]:
        """Each item is one request's PatchSets; every network runs once over all of them."""
        flat = [ps for sets in requests for ps in sets]
        scores = await asyncio.to_thread(self.models.score, flat)
        self.stats["batches"] += 1
        self.stats["batched_requests"] += len(requests)
        self.stats["max_batch"] = max(self.stats["max_batch"], len(requests))
        out, i = [], 0
        for sets in requests:
            out.append(scores[i : i + len(sets)])
            i += len(sets)
        return out


# ---------------------------------------------------------------- starting it


def build_app(run: str, options: ServeOptions = ServeOptions()):
    """The Serve application for RUN (not started)."""
    return PredictDeployment.options(
        num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.num_cpus},
        max_ongoing_requests=options.max_ongoing_requests,
    ).bind(os.path.abspath(run) if "://" not in run else run, asdict(options))


def check_run(run: str, options: ServeOptions) -> None:
    """Fail fast, with exit 2, on a RUN that cannot serve: before any replica starts."""

    read_run(run)
    if options.model not in MODEL_KINDS:
        raise UserError(f"unknown --model {options.model!r}; valid: {', '.join(MODEL_KINDS)}")
    if options.model == "mtl":
        select_mtl(run, options.mtl_target, options.trial)
    else:
        for task in ("asc", "aec"):
            ensemble_members(run, task)


def start(run: str, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions = ServeOptions()) -> str:
    """Start Serve on the current Ray instance (a local one if none) and deploy; the URL."""

    check_run(run, options)
    ensure_ray()
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(run, options), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def serve_forever(run: str, host: str, port: int, options: ServeOptions) -> int:
    """`raymtl serve`: start, say where, and answer until interrupted; then shut Serve down."""
    url = start(run, host, port, options)
    print(
        f"serving {run} ({options.model}) at {url}: POST {url}/predict, GET {url}/ready; Ctrl-C to stop",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0
