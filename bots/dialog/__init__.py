"""The channel-neutral conversation engine: every user journey written once for all channels."""
