"""Executors run the stages of a plan: locally as processes, or on Kubernetes."""
