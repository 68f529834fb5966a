"""The hub: connection registry, channels, fan-out with write coalescing, and housekeeping."""
