"""Pure domain of the administrative-reform contest: rules, attempts, scoring, use cases.

This package imports nothing but the standard library.
"""
