"""The framework-free core: configuration, errors, the OpenID relying party, the token vault,
store and refresh, the session indexes and the Spark / RESO API clients.

Nothing here imports Flask: the Flask layer (:mod:`flask_spark.ext`) wires these pieces into an
app, and a background worker can use them directly.
"""
