"""Distributions as files: one wheel reader (the archive read once; RECORD, METADATA, entry points parsed
once), one installed-distribution reader, one hasher. Every stage that looks inside a wheel or a
site-packages goes through here, so there is one parser of each format."""
