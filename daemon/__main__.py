"""python -m gkfs_daemon == gkfs-daemon."""
import sys

from .cli import main

sys.exit(main())
