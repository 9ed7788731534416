"""The only place boto3 is called: the transport base and one adapter per AWS service."""
