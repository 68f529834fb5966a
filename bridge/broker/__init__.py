"""Brokers carry publications between the hub's fan-out and (later) other hub instances."""
