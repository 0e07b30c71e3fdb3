"""Load and scale benchmarks of temporal-journeys against raw Temporal, run with `make bench`.

Every figure is measured next to a raw-Temporal baseline taken on the same server in the same
run; `python -m bench` writes `bench/results.jsonl` rows and renders `BENCHMARKS.md`.
"""
