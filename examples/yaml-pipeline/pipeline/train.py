"""Train an iris classifier; the test split and iterations come from `args` in bodywork.yaml."""

import argparse
import os

import joblib
from pipeline import common
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--test-size", type=float, default=0.25)
parser.add_argument("--max-iter", type=int, default=100)
options = parser.parse_args()

data = load_iris()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=options.test_size, random_state=7, stratify=data.target
)
model = LogisticRegression(max_iter=options.max_iter).fit(X_train, y_train)
print(f"test_size={options.test_size} max_iter={options.max_iter}")
print(f"test accuracy {model.score(X_test, y_test):.3f}")

path = common.model_path()
path.parent.mkdir(parents=True, exist_ok=True)
bundle = {
    "model": model,
    "classes": list(data.target_names),
    "commit": os.environ.get("BODYWORK_GIT_COMMIT"),
}
joblib.dump(bundle, path)
print(f"model saved to {path}")
