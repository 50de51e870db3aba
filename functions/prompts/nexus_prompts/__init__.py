"""Prompts: the prompt library's scheduled sync in AWS (ADR 0023), as two functions."""
