"""The harness: what drives the simulator (generator, sandbox, simulated truth) for the demo, the benchmark
and the CLI's harness commands. It stands beside the product: production code never imports it."""
