"""Aggregation of crowd answers into labels, one algorithm per module (as in crowd-kit)."""
from analysis.aggregation.dawid_skene import DawidSkene
from analysis.aggregation.majority_vote import MajorityVote
from analysis.aggregation.threshold_vote import ThresholdVote

__all__ = ["DawidSkene", "MajorityVote", "ThresholdVote"]
