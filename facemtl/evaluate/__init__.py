"""Evaluation: the model evaluation protocol (``protocol``) and studies such as ``landmark_to_pose``."""
