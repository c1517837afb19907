"""Shared by both stages: the feature names and where the model lives.

The project root is on PYTHONPATH, so `from pipeline import common` works from any stage.
"""

import os
from pathlib import Path

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def model_path() -> Path:
    """The model file in the artifacts directory every stage of the project shares."""
    return Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", ".")) / "iris-model.joblib"
