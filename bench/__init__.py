"""Benchmarks of kube-autorollout (see bench/README.md and docs/benchmarks.md)."""
