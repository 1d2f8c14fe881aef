"""Offline side of edge-agent: datasets, the torch attention model, ONNX export, int8, evaluation.

May import `edge_agent` (for the bundle contract); the runtime never imports this package.
"""
