"""Reading inputs: split files into byte ranges, parse lines, map a split to a Partial."""
