"""The native messaging host: the agent behind the browser extension (spec: native_host/PROTOCOL.md)."""
