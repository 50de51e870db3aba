"""Conversation tracking: recorded requests become conversations with branches, sub-agents and
compactions. Pure logic here; the database side is nexus.db.tracking."""
