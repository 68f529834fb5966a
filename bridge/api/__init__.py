"""HTTP side of the hub: FastAPI app, REST routers, health and metrics."""
