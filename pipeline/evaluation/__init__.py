"""Metrics, evaluation reports, subgroups, record-level answers and model agreement."""
