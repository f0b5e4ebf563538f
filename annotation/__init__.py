"""Crowd annotation app: studies, tasks (HITs), assignments, answers, workers and their views."""
