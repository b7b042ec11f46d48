"""RRSIS-D and RS-GCG metrics live here (one module per metric)."""
