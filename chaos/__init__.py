"""`make chaos`: the fault test of the production layout (see chaos/run.py)."""
