"""Schema migrations run by CloudFormation on deploy (a custom resource)."""
