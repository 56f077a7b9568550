"""The outputs: the JSON documents, atomic writes, the run figures."""
