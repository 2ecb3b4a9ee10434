"""The thin Flask layer: the extension, the ``spark`` blueprint, the decorator and proxies, the
Redis session interface, template helpers and the ``flask spark`` commands.

It wires :mod:`flask_spark.core` into an app and owns nothing else in it.
"""
