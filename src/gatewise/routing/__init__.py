"""Routing: aliases to deployments and strategies for choosing among them."""
