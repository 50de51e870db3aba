"""The dashboard service: JSON API (and, later, the web UI) over recorded traffic."""
