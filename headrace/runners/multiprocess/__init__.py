"""The multiprocess runner: a coordinator and worker processes on one machine."""
