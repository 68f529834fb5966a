"""Protocol v1: pure, I/O-free envelope codec, framing, channel policy and code registries."""
