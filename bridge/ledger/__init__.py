"""The signal ledger: signals, acknowledgements, trade events, delivery status and control,
on top of the hub and the store."""
