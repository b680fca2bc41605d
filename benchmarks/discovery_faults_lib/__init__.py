"""Helpers of ``benchmarks/discovery_faults.py``: recording (``record``), pure analysis of the
recordings (``analysis``) and the markdown report (``report``)."""
