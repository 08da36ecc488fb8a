"""Recommendations: ranking of settings, including ones never generated (``rank``), and
prompt-set exports (``export``: CSV, JSON, AUTOMATIC1111, confirmation study)."""
