"""Misclassification agreement (Stock & Cisse, ECCV 2018, §3.1-§3.2): evidence and aggregation, no Django."""
