//! speccascade-tasks: datasets, prompts, metrics and the code-execution sandbox.
