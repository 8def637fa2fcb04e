"""The live event stream (SSE over ASGI)."""
