"""Multi-host suite: fixtures live in mn_harness.py (a unique module name,
importable by the tests)."""
from mn_harness import make_cluster, make_net, rv_nodes, rv_preload, rv_sysroot  # noqa: F401
