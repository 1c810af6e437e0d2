"""faxops: declarative fax campaigns, planned and applied exactly once."""

__version__ = "0.1.0"
