"""Pure modelling code: fits, decisions, evaluation and monitoring. Never imports `pipeline`."""
