"""What the benchmarks share: statistics, child processes and /proc, Claude Code-like traffic, and
report formatting. The entry scripts (bench/*.py) import from here, never from one another."""
