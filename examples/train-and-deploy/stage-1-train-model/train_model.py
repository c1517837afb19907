"""Train a classifier on the iris data set that ships with scikit-learn; save it as an artifact.

BODYWORK_ARTIFACTS_DIR is shared by every stage of the project and kept between runs, so the
serving stage finds the model this stage writes.
"""

import json
import os
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

artifacts = Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", "."))
data = load_iris()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.2, random_state=42, stratify=data.target
)
model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
accuracy = model.score(X_test, y_test)
print(f"trained on {len(X_train)} rows; test accuracy {accuracy:.3f}")

artifacts.mkdir(parents=True, exist_ok=True)
joblib.dump({"model": model, "classes": list(data.target_names)}, artifacts / "model.joblib")
(artifacts / "model-info.json").write_text(
    json.dumps({"accuracy": accuracy, "commit": os.environ.get("BODYWORK_GIT_COMMIT")})
)
print(f"model saved to {artifacts / 'model.joblib'}")
