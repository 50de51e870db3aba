"""Alerts: who gets what (``config``), when an event is raised at ingest (``rules``, pure), how it
reads (``message``, pure), where it goes (``channels``: Slack, the stage's SNS topic), and the
``notifier`` that de-duplicates in PostgreSQL (``nexus.db.alerts``) and delivers. See ADR 0018."""
