"""Explanations of the model's outputs (paper Fig. 1): Grad-CAM per branch and the modality weights, drawn."""
