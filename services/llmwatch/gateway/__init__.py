"""The gateway: an OpenAI-compatible proxy that writes one access-log line and one metric update per request."""
