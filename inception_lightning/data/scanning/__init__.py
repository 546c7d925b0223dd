"""Scanning image folders: header checks, the scan cache, one scan per node."""
