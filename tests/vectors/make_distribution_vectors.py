"""Regenerate distribution.json: python3 tests/vectors/make_distribution_vectors.py

The vectors pin gkfs_client.distribution (docs/protocol.md section 5); every
implementation (Python, C) checks itself against the JSON, so regenerate
only when the placement rule deliberately changes (a protocol version bump).
"""
import json
from pathlib import Path

from gkfs_client.distribution import chunk_hash, chunk_owner, metadata_hash, metadata_owner

PATHS = [
    "/", "/a", "/b", "/a/b", "/a:b", "/a/b/c", "/file.txt", "/dir/sub/file-0001",
    "/ünïcödé", "/日本語/ファイル", "/emoji/😀", "/with space", "/tab\tname", "/new\nline",
    "/" + "x" * 255, "/" + "/".join(["d"] * 100), "/.hidden", "/a..b", "/-", "/%2F",
    "/CaseSensitive", "/casesensitive", "/\u00e9", "/e\u0301",  # NFC vs NFD differ
] + [f"/data/rank{r}/out.{i}" for r in range(4) for i in range(3)]
N_HOSTS = [1, 2, 3, 4, 5, 7, 8, 16, 64, 1000]
KEYS = ["0" * 32, "f" * 32, "0123456789abcdef0123456789abcdef", "/a/b", "ü", "k"]
CHUNKS = [0, 1, 2, 7, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1]


def rows():
    for p in PATHS:
        for n in N_HOSTS:
            yield {"path": p, "n_hosts": n, "metadata_owner": metadata_owner(p, n),
                   "hash": f"{metadata_hash(p):016x}"}
    for k in KEYS:
        for c in CHUNKS:
            for n in N_HOSTS:
                yield {"data_key": k, "chunk": c, "n_hosts": n, "chunk_owner": chunk_owner(k, c, n),
                       "hash": f"{chunk_hash(k, c):016x}"}


if __name__ == "__main__":
    out = Path(__file__).with_name("distribution.json")
    doc = {"about": "gkfs placement vectors: FNV-1a 64, see docs/protocol.md section 5",
           "fnv1a64": [{"bytes_hex": b.hex(), "hash": f"{h:016x}"} for b, h in [
               (b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)]],
           "rows": list(rows())}
    text = "{\n" + ",\n".join(f"{json.dumps(k)}: " + (
        "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in v) + "\n]" if isinstance(v, list)
        else json.dumps(v)) for k, v in doc.items()) + "\n}\n"
    out.write_text(text, encoding="utf-8")
    # The same rows for C, no JSON parser needed: strings as hex of their
    # UTF-8 bytes, one row per line, tab-separated.
    tsv = ["# kind\tstring_utf8_hex\tchunk\tn_hosts\towner\thash"]
    for r in doc["rows"]:
        if "path" in r:
            tsv.append(f"m\t{r['path'].encode().hex()}\t-\t{r['n_hosts']}\t{r['metadata_owner']}\t{r['hash']}")
        else:
            tsv.append(f"c\t{r['data_key'].encode().hex()}\t{r['chunk']}\t{r['n_hosts']}\t{r['chunk_owner']}\t{r['hash']}")
    out.with_suffix(".tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8")
    print(f"wrote {len(doc['rows'])} rows to {out} and {out.with_suffix('.tsv')}")
