"""The networks: PIP's prompt modules, the backbones they steer, the degradation sensor, the model registry and the
published checkpoints' loader.
"""
