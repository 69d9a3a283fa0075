"""Safety tests: bad inputs and fuzzed files never give a traceback."""
