"""Export steps, each a function from a file to a file whose output carries the model card.

`onnx`: checkpoint → ONNX graph.
"""
