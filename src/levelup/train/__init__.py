"""Training: TrainConfig, the loop, checkpoints and the fast paths (cached AEVs, hand-written backprop)."""
