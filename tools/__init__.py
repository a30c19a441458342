"""Measurement, benchmark, fuzzing and vector tools; run each from the repository root as
`python -m tools.NAME` (e.g. `python -m tools.bench_busy --help`). They import one another as `tools.X`."""
