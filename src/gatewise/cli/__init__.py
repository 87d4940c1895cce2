"""The `gatewise` command line."""
