"""Hyperparameter search per architecture with Optuna (spaces.py: search spaces; study.py: studies)."""
