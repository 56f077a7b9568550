"""Executors: what runs the map and digest tasks (this process, local worker processes)."""
