"""Serve the model trained by train.py: POST /iris/v1/score with the four measurements."""

import argparse

import joblib
from flask import Flask, jsonify, request
from pipeline import common

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)  # set by `args` in bodywork.yaml
options = parser.parse_args()

bundle = joblib.load(common.model_path())
app = Flask(__name__)


@app.post("/iris/v1/score")
def score():
    payload = request.get_json(silent=True) or {}
    missing = [f for f in common.FEATURES if not isinstance(payload.get(f), (int, float))]
    if missing:
        return jsonify(error=f"numbers required for: {', '.join(missing)}"), 400
    label = int(bundle["model"].predict([[payload[f] for f in common.FEATURES]])[0])
    return jsonify(species_prediction=bundle["classes"][label], model_commit=bundle["commit"])


if __name__ == "__main__":
    print(f"serving the model on port {options.port}")
    app.run(host="0.0.0.0", port=options.port)
