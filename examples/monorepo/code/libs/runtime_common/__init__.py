"""Shared runtime for every processor: health checks and the websocket protocol."""
