"""emoedge: context-aware emotion recognition (Vo & Lee 2022) from training to edge deployment."""

__version__ = "0.1.0"
