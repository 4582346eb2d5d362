"""Placement against the shared vectors (the C client checks the same files)."""
import json
from pathlib import Path

import pytest

from gkfs_client.distribution import (chunk_hash, chunk_owner, chunk_ranges, fnv1a64, metadata_hash,
                                      metadata_owner)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def test_fnv1a64_reference_values():
    # Published FNV-1a 64 test values, independent of our own code.
    doc = json.loads((VECTORS / "distribution.json").read_text(encoding="utf-8"))
    assert len(doc["fnv1a64"]) >= 3
    for v in doc["fnv1a64"]:
        assert f"{fnv1a64(bytes.fromhex(v['bytes_hex'])):016x}" == v["hash"]


def test_json_vectors():
    rows = json.loads((VECTORS / "distribution.json").read_text(encoding="utf-8"))["rows"]
    assert len(rows) > 1000
    kinds = {"m": 0, "c": 0}
    for r in rows:
        if "path" in r:
            kinds["m"] += 1
            assert f"{metadata_hash(r['path']):016x}" == r["hash"], r
            assert metadata_owner(r["path"], r["n_hosts"]) == r["metadata_owner"], r
        else:
            kinds["c"] += 1
            assert f"{chunk_hash(r['data_key'], r['chunk']):016x}" == r["hash"], r
            assert chunk_owner(r["data_key"], r["chunk"], r["n_hosts"]) == r["chunk_owner"], r
    assert kinds["m"] > 100 and kinds["c"] > 100


def test_tsv_matches_json():
    lines = [l for l in (VECTORS / "distribution.tsv").read_text().splitlines() if not l.startswith("#")]
    rows = json.loads((VECTORS / "distribution.json").read_text(encoding="utf-8"))["rows"]
    assert len(lines) == len(rows)
    for line in lines:
        kind, s, chunk, n, owner, h = line.split("\t")
        s = bytes.fromhex(s).decode("utf-8")
        if kind == "m":
            assert metadata_owner(s, int(n)) == int(owner) and f"{metadata_hash(s):016x}" == h
        else:
            assert chunk_owner(s, int(chunk), int(n)) == int(owner) and f"{chunk_hash(s, int(chunk)):016x}" == h


def test_chunk_hash_is_hash_of_concatenation():
    key, k = "/some/key", 123456789
    assert chunk_hash(key, k) == fnv1a64(key.encode() + b"\0" + k.to_bytes(8, "little"))


def test_unicode_normalisation_is_not_applied():
    assert metadata_hash("/\u00e9") != metadata_hash("/e\u0301")


def test_spread_over_hosts():
    owners = [metadata_owner(f"/f{i}", 4) for i in range(1000)]
    counts = [owners.count(i) for i in range(4)]
    assert min(counts) > 150, counts
    chunk_counts = [0] * 4
    for k in range(1000):
        chunk_counts[chunk_owner("0123456789abcdef0123456789abcdef", k, 4)] += 1
    assert min(chunk_counts) > 150, chunk_counts


def test_bad_arguments():
    with pytest.raises(ValueError):
        metadata_owner("/a", 0)
    with pytest.raises(ValueError):
        chunk_owner("k", -1, 3)


@pytest.mark.parametrize("offset,count,cs,expect", [
    (0, 0, 8, []),
    (0, 8, 8, [(0, 0, 8)]),
    (3, 10, 8, [(0, 3, 5), (1, 0, 5)]),
    (8, 17, 8, [(1, 0, 8), (2, 0, 8), (3, 0, 1)]),
])
def test_chunk_ranges(offset, count, cs, expect):
    assert list(chunk_ranges(offset, count, cs)) == expect
