"""Relay cost and capacity benchmark (issue #6). Run by hand: `python -m bench.run --help`.

Never imported by the test suite and never a timed unit test: numbers depend on the
machine and on whatever else runs on it, so they live in `bench/results/`, not in asserts.
"""
