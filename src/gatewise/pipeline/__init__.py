"""The middleware chain every request runs through (see core.py for the order)."""
