"""``python -m bench``: the benchmark's own entry (its child processes use it too)."""

from __future__ import annotations

import sys

from bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
