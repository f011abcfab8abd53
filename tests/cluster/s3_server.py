"""moto's S3 server, as `moto_server` runs it, with a byte meter in front: every request's body
and every response's body is counted per (HTTP method, first key folder under the bucket), so a
test can say how many bytes a step read from and wrote to S3. `GET /_meter` returns the counts
as JSON ({"GET features": [requests, request bytes, response bytes], ...}); moto never sees it.

    python -m tests.cluster.s3_server --port P
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections import defaultdict

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

METER_PATH = "/_meter"


class ByteMeter:
    """WSGI middleware counting request and response bodies by method and key folder."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == METER_PATH:
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        # /bucket/folder/...: the folder names what was read or written (features, runs).
        parts = path.strip("/").split("/")
        key = f"{environ.get('REQUEST_METHOD', '?')} {parts[1] if len(parts) > 1 else '-'}"
        with self.lock:
            self.counts[key][0] += 1
        # Bodies are counted as moto reads them: uploads may be chunked, with no Content-Length.
        environ["wsgi.input"] = _CountedInput(environ["wsgi.input"], self, key)
        return self._counted(self.app(environ, start_response), key)

    def add(self, key: str, column: int, n: int) -> None:
        with self.lock:
            self.counts[key][column] += n

    def _counted(self, chunks, key):
        try:
            for chunk in chunks:
                self.add(key, 2, len(chunk))
                yield chunk
        finally:
            if hasattr(chunks, "close"):
                chunks.close()


class _CountedInput:
    """A request body stream that adds what is read from it to the meter."""

    def __init__(self, stream, meter: ByteMeter, key: str):
        self.stream, self.meter, self.key = stream, meter, key

    def _seen(self, data: bytes) -> bytes:
        self.meter.add(self.key, 1, len(data))
        return data

    def read(self, *args):
        return self._seen(self.stream.read(*args))

    def readline(self, *args):
        return self._seen(self.stream.readline(*args))

    def readlines(self, *args):
        return [self._seen(line) for line in self.stream.readlines(*args)]

    def __iter__(self):
        return (self._seen(line) for line in self.stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server sets it
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", args.port, ByteMeter(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
