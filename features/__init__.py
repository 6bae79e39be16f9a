"""Pure feature code: the data contract, validation, point-in-time features. Never imports `pipeline` or `models`."""
