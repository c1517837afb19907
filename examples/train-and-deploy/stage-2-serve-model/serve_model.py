"""Serve the trained iris model over HTTP: POST /iris/v1/score with four measurements."""

import os
from pathlib import Path

import joblib
from flask import Flask, jsonify, request

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
artifacts = Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", "."))
bundle = joblib.load(artifacts / "model.joblib")
app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok", "commit": os.environ.get("BODYWORK_GIT_COMMIT")}


@app.post("/iris/v1/score")
def score():
    payload = request.get_json(silent=True) or {}
    missing = [f for f in FEATURES if not isinstance(payload.get(f), (int, float))]
    if missing:
        return jsonify(error=f"numbers required for: {', '.join(missing)}"), 400
    row = [[payload[f] for f in FEATURES]]
    label = int(bundle["model"].predict(row)[0])
    probability = float(bundle["model"].predict_proba(row)[0][label])
    return jsonify(
        species_prediction=bundle["classes"][label],
        probability=round(probability, 3),
        model_commit=os.environ.get("BODYWORK_GIT_COMMIT"),
    )


PORT = 5000  # must match PORT in config.ini

if __name__ == "__main__":
    print(f"serving the model on port {PORT}")
    app.run(host="0.0.0.0", port=PORT)
