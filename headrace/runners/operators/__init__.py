"""The operators that execute each primitive, shared by the direct runner and the engine.

An operator receives batches of ``WindowedValue`` s and watermarks on its inputs
and pushes batches and watermarks to its receivers. The direct runner wires them
together in one thread; the engine (``headrace.runners.engine``) puts exchanges
between them and runs one copy per subtask.
"""
