"""Misclassification agreement (Stock & Cisse, ECCV 2018; SPEC §4): evidence and aggregation, no Django."""
