"""feed-agent: delivers SIS flat files to Blackboard Learn, S3 buckets and job APIs."""

__version__ = "0.1.0"
