"""Render docs/bench_extract.json and docs/bench_search.json as the tables in docs/benchmarks.md.

Usage: python benchmarks/report.py > docs/benchmarks-tables.md
"""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    ext = json.loads((DOCS / "bench_extract.json").read_text())
    print(f"### Extraction ({ext['machine']})\n")
    print("| model | dim | input | ONNX Runtime img/s | torch eager img/s | ORT speed-up | end-to-end img/s |")
    print("|---|---|---|---|---|---|---|")
    for r in ext["rows"]:
        print(f"| {r['model']} | {r['dim']} | {r['input']} | {r['onnxruntime_img_s']} | {r['torch_eager_img_s']} "
              f"| {r['speedup']}x | {r['end_to_end_img_s']} |")
    srch = json.loads((DOCS / "bench_search.json").read_text())
    print(f"\n### Search, exact, k=10 ({srch['machine']})\n")
    cpus = srch["machine"]["cpus"]
    print(f"| items | dim | metric | faiss 1 query, 1 thread (q/s) | faiss 1 query, {cpus} threads (q/s) "
          "| faiss batch (q/s) | numpy brute force 1 query (q/s) | faiss / numpy (1 query) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in srch["rows"]:
        ratio = r["faiss_single_qps_1t"] / r["numpy_single_qps"]
        print(f"| {r['n']:,} | {r['dim']} | {r['metric']} | {r['faiss_single_qps_1t']} | {r[f'faiss_single_qps_{cpus}t']} "
              f"| {r['faiss_batch_qps']} | {r['numpy_single_qps']} | {ratio:.0f}x |")


if __name__ == "__main__":
    main()
