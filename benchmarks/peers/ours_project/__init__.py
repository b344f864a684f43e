"""The benchmark project as the peers benchmark serves it: the API requires a login, as it does by default.

Its settings are the benchmark project's (SQLite and local disk only) with the
app's default ``PERMISSION_CLASSES`` (``IsAuthenticated``); the client sends a
token. The bare view of the same project is the anchor (it checks nothing).
"""
