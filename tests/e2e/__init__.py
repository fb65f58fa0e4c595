"""End-to-end tests: a real listening server on loopback and real WebSocket clients."""
