"""Destinations: Learn's flat-file endpoint, S3 buckets, job APIs (`base.Target` is their protocol).

Which class serves which `[target:NAME] type` is the profile's business (`agent.profiles`).
"""
