"""The demo: an embedded moto server seeded with a sample account."""
