"""Scorers turn a condition's images into numbers: CLIP image-text similarity (``clip``)."""
