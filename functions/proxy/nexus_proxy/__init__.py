"""The recording proxy: a transparent Anthropic Messages API pass-through."""
