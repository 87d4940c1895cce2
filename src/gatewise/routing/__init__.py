"""Routing: aliases to deployments, strategies for choosing among them, and the middleware
that applies them (`middleware`: alias resolution and the router; `tracking`: what the
strategies learn from each attempt)."""
