"""The streaming engine shared by the parallel runners.

``plan`` turns a pipeline into subtasks and edges, ``task`` wires one
subtask's operators and exchanges, ``exchange`` and ``transport`` move
batches and control frames between subtasks, and ``runtime`` is the event
loop a worker process (or actor) runs.
"""
