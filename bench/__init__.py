"""Benchmarks (not tests): each module has `run(...) -> dict` and a CLI; results go to outputs/bench/."""
