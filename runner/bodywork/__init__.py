"""Bodywork: deploy machine-learning projects to Kubernetes straight from Git.

This package is installed from the repo's `runner/` folder (see ARCHITECTURE.md).
"""

__version__ = "0.1.0"
