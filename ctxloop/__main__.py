"""``python -m ctxloop``: check ctxloop's contract on this interpreter (placeholder)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    example = Path(__file__).resolve().parent.parent / "examples" / "notebook.py"
    sys.argv = [str(example)]
    runpy.run_path(str(example), run_name="__main__")
