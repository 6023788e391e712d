"""One router module per resource of the REST API."""
