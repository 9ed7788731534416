"""The human review desk."""
