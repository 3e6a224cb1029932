"""How hard a rotation checks its new key, by default.

Apart from the workflow so that the command line can show these numbers in
its help without loading the workflow (and botocore) to build its parser.
"""

# The new key must answer this many times in a row, within the timeout, before
# the old one is switched off (a new key can be refused for some seconds, and
# one answer does not prove every endpoint knows it).
DEFAULT_VERIFY_TIMEOUT = 60.0
DEFAULT_VERIFY_SUCCESSES = 3
DEFAULT_VERIFY_INTERVAL = 1.0
