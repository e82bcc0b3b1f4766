"""``python -m benchmarks [--quick] [--json PATH] ...``: see ``benchmarks/run.py``.

``python -m benchmarks connections [--quick] ...``: connections on a ctxloop
loop vs its base loop, see ``benchmarks/connections.py``.
"""

from __future__ import annotations

import sys

from benchmarks.run import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["connections"]:
        from benchmarks import connections

        sys.exit(connections.main(sys.argv[2:]))
    sys.exit(main())
