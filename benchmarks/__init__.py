"""ctxloop's benchmark suite: ``python -m benchmarks`` (see ``benchmarks/run.py``).

Not part of the test suite: it measures ratios (ctxloop / native) in one
process, interleaving the arms, and never asserts a time.
"""
