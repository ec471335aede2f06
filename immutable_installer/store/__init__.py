"""The content-addressed store: one read-only entry per (wheel sha256, interpreter), filled in-process and in
parallel (fill.py), verified, repaired and collected (entries.py). Generations link their files from it."""
