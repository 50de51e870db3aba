"""The ingest consumer: queue -> derived record -> Postgres. Off the proxy's hot path."""
