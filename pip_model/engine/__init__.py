"""Training: the recipes, the one loop that trains restorers and the sensor (one process or many under ``torchrun``),
losses, resuming.
"""
