"""The alert notifier function: SNS alerts topic in, Slack out (outside the VPC; ADR 0018)."""
