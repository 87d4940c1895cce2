"""Maintenance: jobs on a schedule (cache cleanup, retention purge, health report, key-rotation
checks), each run by one replica at a time under a lease held in the shared store."""
