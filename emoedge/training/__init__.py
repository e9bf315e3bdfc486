"""Training: loss, metrics, the training loop, reports, and backbone pretraining (`pretrain`)."""
