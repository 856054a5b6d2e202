"""Conversation flows: each journey a small state machine over core services."""
