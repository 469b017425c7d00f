"""`tdsl serve`: the engine's interface over HTTP (`api`) and the run pages (`web`)."""
