"""`emoedge bench`: latency and throughput of a model file on this machine, as users measure it (engine alone, end
to end, several streams), with the machine described; the repository's `benchmarks/` scripts call the same code."""
