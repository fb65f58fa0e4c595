"""Fault tests against real ``twistd uploads`` processes on loopback (docs/reliability.md)."""
