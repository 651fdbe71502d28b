"""Training: losses, checkpoints and the stage loop (``train_stage``)."""
