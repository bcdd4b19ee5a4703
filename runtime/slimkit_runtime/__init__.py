"""slimkit-runtime: serve a classifier folder written by ``slimkit package``.

Depends on onnxruntime, tokenizers and numpy only (OpenVINO too for an ``openvino`` package: the
``openvino`` extra): no torch, no transformers, no slimkit. It tokenizes as the Hugging Face fast
tokenizer saved in the folder does (``tokenizer.json``, with the padding, truncation and special
tokens slimkit measured with), runs the ONNX graph or OpenVINO IR, and turns
logits into labels as slimkit measured them: softmax and argmax for a single-label task, sigmoid
and the tuned threshold for a multi-label one.

    from slimkit_runtime import Classifier

    clf = Classifier.load("my-model/")
    clf.predict(["what a day!"])            # ['joy'], or [['joy', 'optimism']] for multi-label
    clf.predict_proba(["what a day!"])      # array of shape (1, labels)
"""

from __future__ import annotations

from slimkit_runtime.classifier import Classifier, PackageError

__all__ = ["Classifier", "PackageError"]
