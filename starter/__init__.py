"""What backend services and operators call: the CLI (and, later, the HTTP API and simulation)."""
