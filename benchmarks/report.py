"""Render the benchmark JSONs in docs/ as the tables in docs/benchmarks.md.

Usage: python benchmarks/report.py [--ann] > docs/benchmarks-tables.md
"""

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def ann_tables() -> None:
    """bench_ann_*.json: every backend x metric, with its speed-up over exact single queries."""
    for path in sorted(DOCS.glob("bench_ann_*.json")):
        data = json.loads(path.read_text())
        rows = data["rows"]
        print(f"\n#### {path.name}: {rows[0]['n']:,} vectors, {data['queries']} queries ({data['vectors']}, "
              f"queries {data.get('query_vectors') or 'from the same file'})\n")
        print("| metric | backend | parameters | build (s) | index MiB | peak RSS MiB | recall@10 | single p50 (ms) "
              "| single p99 (ms) | single q/s | vs exact | batch q/s |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        exact = {r["metric"]: r["single_qps"] for r in rows if r["backend"] == "faiss-flat"}
        for r in rows:
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            speed = f"{r['single_qps'] / exact[r['metric']]:.0f}x" if r["metric"] in exact else "-"
            print(f"| {r['metric']} | {r['backend']} | {params} | {r['build_s']:.1f} | {r['memory_mb']:,.0f} "
                  f"| {r['peak_rss_mb']:,.0f} | {r['recall_at_10']:.3f} | {r['single_p50_ms']:.2f} "
                  f"| {r['single_p99_ms']:.2f} | {r['single_qps']:,.0f} | {speed} | {r['batch_qps']:,.0f} |")


def load(name: str) -> dict | None:
    path = DOCS / name
    return json.loads(path.read_text()) if path.is_file() else None


def scale_tables() -> None:
    """bench_million.json, bench_int8.json, bench_serving*.json and bench_attack.json."""
    m = load("bench_million.json")
    if m:
        w = m["workspace"]
        print(f"\n#### End to end at {m['n']:,} items ([bench_million.json](bench_million.json))\n")
        print(f"Workspace: {w['items']:,} catalogue rows in {w['catalogue_s']} s, {w['store_gb']} GB of vectors "
              f"written shard by shard in {w['store_s']} s.\n")
        print("| index (Hamming) | build (s) | index MiB | recall@10 | single p50 (ms) | photo search p50 (ms) "
              "| photo p95 (ms) | peak RSS while searching photos (MiB) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        photos = {r["backend"]: r for r in m["photo_search"]}
        for r in m["indexes"]:
            ph = photos.get(r["backend"], {})
            print(f"| {r['backend']} | {r['build_seconds']:.1f} | {r['memory_bytes'] / 2**20:,.0f} "
                  f"| {r['recall_at_k']:.3f} | {r['single_p50_ms']:.2f} | {ph.get('p50_ms', '-')} "
                  f"| {ph.get('p95_ms', '-')} | {ph.get('peak_rss_mb', '-'):,} |")
        nb, up = m.get("neighbours"), m.get("updates")
        if nb:
            print(f"\n`neighbours` (k=10, {nb['backend']}): {nb['items']:,} items in {nb['seconds']} s "
                  f"({nb['items_per_s']:,.0f} items/s; the whole catalogue: about "
                  f"{m['n'] / nb['items_per_s'] / 60:.0f} min). ", end="")
        if up:
            print(f"Incremental: {up['added']:,} new items added to the stored index in {up['add_sync_s']} s "
                  f"({up['add_sync']}); {up['removed']:,} items removed from catalogue, store and index in "
                  f"{up['remove_s']} s ({', '.join(up['remove_sync'].values())}).")
    q = load("bench_int8.json")
    if q:
        print("\n#### int8 ([bench_int8.json](bench_int8.json))\n")
        print(f"{q['model']} on {q['images']} catalogue images, {q['cpus']} cores: float32 "
              f"{q['images_per_s']['float32']} images/s, int8 {q['images_per_s']['int8']} images/s: "
              f"**{q['speedup']}x**; cosine similarity of the two models' vectors {q['cosine_mean']} on average "
              f"(lowest {q['cosine_min']}).")
    for name in ("bench_serving_uploads.json", "bench_serving_uploads_2workers.json", "bench_serving.json",
                 "bench_serving_bots.json"):
        r = load(name)
        if r:
            t = r["trivial_get_ms"]
            statuses = "; ".join(f"{route} {codes}" for route, codes in r["statuses"].items())
            print(f"\n- [{name}]({name}): {r['clients']} with {r['workers']} worker(s), queue {r['queue']}, "
                  f"{r['seconds']:.0f} s: trivial GET p50 {t['p50']} ms, **p95 {t['p95']} ms**, max {t['max']} ms "
                  f"({t['count']} requests); uploads p50 {r['upload_ms']['p50']} ms; 5xx: "
                  f"{r['server_errors_5xx']}; votes lost: {r['votes_lost']} of {r['accepted_votes']}. "
                  f"Statuses: {statuses}.")
    a = load("bench_attack.json")
    if a:
        print("\n| run | honest votes | attack votes accepted | refused | left out (looked up) | rank changes "
              "| approval moved beyond its half-width |")
        print("|---|---:|---:|---|---:|---|---|")
        for name, r in a.items():
            moved = ", ".join(f"{s} {v:+.1%}" for s, v in r["approval_change"].items() if s in r["beyond_half_width"])
            ranks = ", ".join(f"{s} {b}->{c}" for s, (b, c) in r["rank_changes"].items()) or "none"
            print(f"| {name} | {r['honest_votes']} | {r['attack']['accepted']} | {r['attack']['refused'] or '-'} "
                  f"| {r['after']['left_out'].get('looked-up', 0)} | {ranks} | {moved or 'none'} |")


def main() -> None:
    if "--ann" in sys.argv:
        ann_tables()
        return
    if "--scale" in sys.argv:
        scale_tables()
        return
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
