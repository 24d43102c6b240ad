"""Evaluation: the protocol that crops each labelled face, predicts and scores (``protocol``)."""
