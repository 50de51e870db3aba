"""The prompt library (ADR 0023): templates kept in a Git repository, synced into PostgreSQL, served
over MCP. ``template`` parses and renders one file; ``source`` reads a repository at a commit."""
