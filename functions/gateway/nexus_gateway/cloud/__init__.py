"""The gateway's AWS shape: a streaming front outside the VPC, a router inside it, and workers (the
gateway app itself, one per ECS task) that hold the Claude Code sessions. See docs/adr/0015."""
