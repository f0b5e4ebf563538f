"""Aggregation of crowd answers into labels, one algorithm per module (as in crowd-kit)."""
from analysis.aggregation.majority_vote import MajorityVote

__all__ = ["MajorityVote"]
