"""Small files in the real dataset formats, and a loopback HTTP server to serve them."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                      for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def mnist_like_files(n_train=30, n_test=10, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        files[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        files[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx_bytes(np.arange(n) % 10))
    return files


def cifar_batch(n: int, seed: int, shape=(None, 3072)) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, shape[1]), dtype=np.uint8)
    return pickle.dumps({b"data": data, b"labels": [i % 10 for i in range(n)]})


def cifar_tarball(n_per_batch=4) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            payload = cifar_batch(n_per_batch, i)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class FileServer:
    """Serves ``files`` (name -> bytes). ``truncate`` names are cut short mid-transfer
    (Content-Length promises the full size); ``fail_first`` names answer 500 once."""

    def __init__(self, files: dict[str, bytes], truncate=(), fail_first=()):
        self.files = dict(files)
        self.truncate = set(truncate)
        self.fail_first = set(fail_first)
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                if name in outer.fail_first:
                    outer.fail_first.discard(name)
                    self.send_error(500)
                    return
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in outer.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
