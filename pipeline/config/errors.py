"""The one exception of a bad config value (its own module: schema, validation and stages all raise it)."""


class ConfigError(ValueError):
    """A config value outside its allowed range (message: one line, names the key)."""
