"""The command line: the composition root, the only place that imports both webhook and reconciler."""
