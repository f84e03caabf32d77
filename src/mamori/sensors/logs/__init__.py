"""One module per log format; each registers itself with ``sensors.registry.log_sensor``."""
