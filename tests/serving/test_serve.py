"""`raymtl serve`: the Ray Serve endpoint on the session's Ray instance, on loopback, with a real
HTTP client: the same answers as `raymtl predict`, batching, limits and bad uploads."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import requests
import soundfile as sf

from raymtl.data.classes import ESC50_CLASSES, TUT2017_SCENES
from raymtl.serving.models import load_models
from raymtl.serving.predict import Predictor
from tests.serving.conftest import TUT_A, TUT_B, assert_same_answer, read, write

pytestmark = pytest.mark.serve

LIMIT_BYTES = 3_000_000  # a 10 s 16-bit stereo WAV (1.76 MB) fits, 3 MB + 1 byte does not
LIMIT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(run, ray_session):
    from ray import serve

    from raymtl.serving.serve import ServeOptions, start

    options = ServeOptions(
        model="mtl",
        max_upload_bytes=LIMIT_BYTES,
        max_duration_s=LIMIT_S,
        max_batch_size=8,
        batch_wait_timeout_s=0.5,  # long enough for concurrent test requests to share a batch
        num_cpus=0,  # the session's 2 CPUs stay free for the other fixtures
    )
    url = start(str(run), "127.0.0.1", _free_port(), options)
    yield url
    serve.shutdown()


@pytest.fixture(scope="module")
def local(run) -> Predictor:
    return Predictor(load_models(str(run), "mtl"))


def _post_file(url: str, path, name: str | None = None, **params) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(
            f"{url}/predict", files={"file": (name or path.name, f, "audio/wav")}, params=params, timeout=120
        )


def _same_answer(served: dict, local: dict) -> None:
    assert_same_answer({**served, "file": None}, {**local, "file": None})


def test_ready_and_info(server, trained_classes):
    r = requests.get(f"{server}/ready", timeout=30)
    assert r.status_code == 200 and r.json() == {"ready": True, "model": "mtl"}
    info = requests.get(f"{server}/", timeout=30).json()
    assert info["limits"] == {"max_upload_bytes": LIMIT_BYTES, "max_duration_s": LIMIT_S, "max_batch_size": 8}
    assert info["class_names"] == {"scene": trained_classes["asc"], "events": trained_classes["aec"]}
    assert set(info["class_names"]["scene"]) == set(TUT2017_SCENES) and set(
        info["class_names"]["events"]
    ) == set(ESC50_CLASSES)


def test_a_wav_upload_gets_the_same_answer_as_predict(server, tiny_data, local):
    path = tiny_data / TUT_A
    r = _post_file(server, path)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    doc = r.json()
    want = local.predict(["unused"], top_k=3)  # the document's model part
    assert doc["format"] == "raymtl-predict/1" and doc["top_k"] == 3
    assert doc["model"] == want["model"]
    (record,) = doc["files"]
    assert record["file"] == "a001_0_10.wav"
    _same_answer(record, local.predict_file(path))


def test_a_raw_flac_body_and_a_long_file_with_a_timeline(server, tiny_data, tmp_path, local):
    audio = np.concatenate([read(tiny_data / TUT_A), read(tiny_data / TUT_B)[: 44100 * 5]])  # 15 s
    flac = tmp_path / "both.flac"
    sf.write(str(flac), audio, 44100, format="FLAC", subtype="PCM_16")
    r = requests.post(
        f"{server}/predict",
        data=flac.read_bytes(),
        params={"name": "../../etc/both.flac", "top_k": 5},
        headers={"Content-Type": "audio/flac"},
        timeout=120,
    )
    assert r.status_code == 200
    (record,) = r.json()["files"]
    assert record["file"] == "both.flac", "only the name's last component is echoed back"
    assert len(record["events"]) == 5 and len(record["segments"]) == 2
    _same_answer(record, local.predict_file(flac, top_k=5))


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"this is not audio" * 100, 422, "x.wav: not usable audio: corrupt or unreadable audio"),
        (b"", 400, "empty upload (0 bytes of audio)"),
    ],
)
def test_bad_uploads_get_a_4xx_with_the_reason(server, body, status, reason):
    r = requests.post(f"{server}/predict", files={"file": ("x.wav", body)}, timeout=60)
    assert r.status_code == status
    assert r.json()["status"] == status and r.json()["error"].startswith(reason)


def test_upload_limits_and_malformed_requests(server, tmp_path):
    # Too large: the Content-Length says so (413 before the body is read) ...
    r = requests.post(f"{server}/predict", data=b"\0" * (LIMIT_BYTES + 1), timeout=60)
    assert r.status_code == 413 and f"larger than the limit of {LIMIT_BYTES} bytes" in r.json()["error"]

    # ... or a chunked body without a Content-Length passes the limit while it is read.
    def chunks():
        for _ in range(LIMIT_BYTES // 65536 + 2):
            yield b"\0" * 65536

    r = requests.post(f"{server}/predict", data=chunks(), timeout=60)
    assert r.status_code == 413

    # Too long: 31 s of 8 kHz mono fits the size limit, not the duration limit.
    long = write(tmp_path / "long.wav", np.zeros((8000 * 31, 1), np.float32), sr=8000)
    r = _post_file(server, long)
    assert (
        r.status_code == 422 and r.json()["error"] == "long.wav: 31.0 s of audio, more than the limit of 30 s"
    )

    r = requests.post(f"{server}/predict", data=b"", timeout=60)
    assert r.status_code == 400 and r.json()["error"] == "empty upload (0 bytes of audio)"
    r = requests.post(f"{server}/predict", files={"other": ("x.wav", b"abc")}, timeout=60)
    assert r.status_code == 400 and "without a file in the field 'file'" in r.json()["error"]
    r = requests.post(f"{server}/predict", params={"top_k": "0"}, data=b"abc", timeout=60)
    assert r.status_code == 400 and r.json()["error"] == "top_k must be in 1..50, got 0"
    assert requests.get(f"{server}/predict", timeout=60).status_code == 405
    assert requests.get(f"{server}/docs", timeout=60).status_code == 404


def test_concurrent_requests_share_a_batch_and_get_their_own_answers(server, tiny_data, local):
    paths = [tiny_data / TUT_A, tiny_data / TUT_B] * 3
    out: dict[int, requests.Response] = {}

    def send(i):
        out[i] = _post_file(server, paths[i])

    before = requests.get(f"{server}/stats", timeout=30).json()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = requests.get(f"{server}/stats", timeout=30).json()
    assert all(out[i].status_code == 200 for i in out)
    want = {p.name: local.predict_file(p) for p in paths[:2]}
    for i, r in out.items():
        (record,) = r.json()["files"]
        assert record["file"] == paths[i].name
        _same_answer(record, want[paths[i].name])
    assert after["answered"] - before["answered"] == len(paths)
    assert after["batched_requests"] - before["batched_requests"] == len(paths)
    assert after["batches"] - before["batches"] < len(paths), "no two requests were batched together"
    assert after["max_batch"] >= 2
