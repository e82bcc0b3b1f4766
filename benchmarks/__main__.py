"""``python -m benchmarks [--quick] [--json PATH] ...``: see ``benchmarks/run.py``.

``python -m benchmarks connections [--quick] ...``: connections on a ctxloop
loop vs its base loop, see ``benchmarks/connections.py``.

``python -m benchmarks threads [--threads N] ...``: on free-threaded CPython,
threads with ctxloop loops of their own, without the GIL and with it, see
``benchmarks/threads.py``.
"""

from __future__ import annotations

import sys

from benchmarks.run import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["connections"]:
        from benchmarks import connections

        sys.exit(connections.main(sys.argv[2:]))
    if sys.argv[1:2] == ["threads"]:
        from benchmarks import threads

        sys.exit(threads.main(sys.argv[2:]))
    sys.exit(main())
