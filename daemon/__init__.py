"""gkfs daemon package (installed and imported as ``gkfs_daemon``)."""
