"""Shared Nexus code: everything the proxy, ingest, dashboard and CLI have in common."""
