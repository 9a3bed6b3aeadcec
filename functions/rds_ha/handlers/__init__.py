"""Lambda handlers: thin. Parse the event, call the service, return a JSON-able result."""
