"""CDK constructs for Nexus, one module per concern, plus the typed stage config."""
