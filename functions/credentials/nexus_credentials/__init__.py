"""Credentials: the scheduled refresher of team OAuth credentials."""
