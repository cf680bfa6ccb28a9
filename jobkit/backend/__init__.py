"""Everything that speaks Redis: the key schema, the transports, the Lua scripts and the
stores built on them. No module outside this package sends a Redis command itself."""
