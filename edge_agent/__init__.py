"""edge-agent: a smart-home controller that decides device states with a small int8 attention model.

The runtime package. It never imports torch or `training` (a test enforces it).
"""

__version__ = "0.1.0"
