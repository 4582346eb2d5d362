"""gkfs client side: wire protocol, distribution, configuration, Python API."""
