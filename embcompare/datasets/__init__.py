"""Evaluation data sets: BATS 3.0 (vendored in data/), and later Google analogies, WordSim, SimLex."""
