"""Activities a worker registers: the built-in ones, the examples, and the loader."""
