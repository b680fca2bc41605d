"""Helpers of ``benchmarks/abuse.py``: raw HTTP/2 attacks and /proc sampling."""
