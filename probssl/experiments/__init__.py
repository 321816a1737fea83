"""Paper reproductions and method comparisons built on the trainer and evaluators."""
