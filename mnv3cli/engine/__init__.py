"""Layer 5: predict / evaluate / train / profile / export as plain functions returning results.

No Click and no printing here: progress is reported through callbacks.
"""
