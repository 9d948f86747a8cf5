"""Use cases: each runs the steps of one thing a user does, between the API and the core."""
