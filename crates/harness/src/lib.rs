//! speccascade-harness: experiment YAML, grid, runner, result store, resume, shards.
