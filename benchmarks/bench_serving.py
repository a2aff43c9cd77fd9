"""A trivial route's latency while large uploads are being searched (the web app under load).

Usage: python benchmarks/bench_serving.py [-w WORKSPACE] [--model efficientnet-lite0] [--uploads 4]
                                          [--seconds 20] [--out docs/bench_serving.json]

Starts the app on 127.0.0.1 (a workspace of the bundled Fashion-MNIST sample with ``--model`` features,
made in a temporary folder unless ``-w`` is given), keeps ``--uploads`` searches of a 249 KB 8000x8000
RGBA PNG in flight (each thread posts a new one when its last returns), and meanwhile asks
``GET /api/systems`` every 50 ms. Reports the trivial route's p50/p95/max latency, the uploads' latency
and how many were refused with 503 (the pool and its queue full).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8000, 8000), (10, 200, 30, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def workspace(root: Path | None, model: str):
    from lookalike.catalogue import import_catalogue
    from lookalike.demo import BUNDLED_SAMPLE
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.workspace import Workspace

    ws = Workspace(root or Path(tempfile.mkdtemp()) / "ws")
    if len(ws.catalogue) == 0:
        import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    return ws


def main() -> None:
    import httpx2 as httpx
    import uvicorn

    from lookalike.web import Settings, create_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", type=Path, default=None)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_serving.json"))
    args = parser.parse_args()

    ws = workspace(args.workspace, args.model)
    settings = Settings(secret="bench", systems=[f"{args.model}/l2"])
    app = create_app(ws, settings)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    png = big_png()
    with httpx.Client(base_url=base, timeout=120) as client:  # warm-up: models loaded, index built
        client.post("/api/search", files={"file": ("p.png", png, "image/png")}, data={"box": "none"})
    stop = time.monotonic() + args.seconds
    uploads: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def uploader() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = client.post("/api/search", files={"file": ("p.png", png, "image/png")}, data={"box": "auto"})
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        uploads.append(time.perf_counter() - t0)
                    elif r.status_code == 503:
                        time.sleep(float(r.headers.get("retry-after", "1")))

    workers = [threading.Thread(target=uploader) for _ in range(args.uploads)]
    for w in workers:
        w.start()
    trivial: list[float] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        time.sleep(1.0)  # the uploads are in flight
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            client.get("/api/systems").raise_for_status()
            trivial.append(1000 * (time.perf_counter() - t0))
            time.sleep(0.05)
    for w in workers:
        w.join()
    server.should_exit = True
    thread.join(10)
    result = {"model": args.model, "uploads_in_flight": args.uploads, "seconds": args.seconds,
              "upload_bytes": len(png), "upload_pixels": "8000x8000 RGBA PNG", "cpus": os.cpu_count(),
              "workers": settings.workers, "queue": settings.queue,
              "trivial_get_ms": {"count": len(trivial), "p50": round(float(np.percentile(trivial, 50)), 1),
                                 "p95": round(float(np.percentile(trivial, 95)), 1),
                                 "max": round(float(np.max(trivial)), 1)},
              "upload_s": {"count": len(uploads), "p50": round(float(np.percentile(uploads, 50)), 2) if uploads else None,
                           "max": round(float(np.max(uploads)), 2) if uploads else None},
              "upload_statuses": statuses}
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
