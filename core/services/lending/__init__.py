"""The marketplace: applications, scoring and review, listings, bids, funding, promotions."""
