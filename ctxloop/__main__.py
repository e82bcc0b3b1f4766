"""``python -m ctxloop``: check ctxloop's contract on this interpreter, for every installed loop.

Prints a table of the checks (N1-N6, S1-S7) against the loops, a legend of
the rules they check, then the cost of a ``context=`` task per loop beside the
target for this Python, and, when a check fails, what to do; exit status 0
when every check passes, 1 on a failure, 2 on a usage error. ``--json`` for
machines, ``--loop NAME`` to pick.
"""

from __future__ import annotations

import os
import sys

from ._report import abandoned_threads, main

if __name__ == "__main__":
    status = main()
    if abandoned_threads():
        # A check missed its deadline and its thread may hold a stuck loop:
        # leave without waiting for anything that thread could block.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
